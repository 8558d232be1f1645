// Which provider holds a Responses id or conversation id: a bounded in-process map filled from relayed replies.
import { LRUCache } from 'lru-cache';
import type { RelayTarget } from '../../streams/llm-relay.js';

/** Ids remembered by default; the least recently used is forgotten first (~100 bytes each). */
const DEFAULT_MAX_IDS = 100_000;

/**
 * Who holds what. A Responses id (`resp_…`) or conversation id only means something to the provider that
 * made it; the gateway learns the owner from the replies it relays (the `id` of a response, the
 * `conversation` or `previous_response_id` a successful request named) and remembers it here, so a
 * chained request or a `GET /v1/responses/:id` reaches that provider even when a fallback made the
 * response. Per instance and bounded: after a restart, on another replica, or once forgotten, an id is
 * unknown and the documented fallback applies (see `pinnedTarget`, `storedResponsesEndpoint`).
 */
export interface ResponseOwners {
  /** Records that `provider` holds `id`. */
  remember(id: string, provider: string): void;
  /** The provider holding `id`, when this instance relayed it and still remembers it. */
  owner(id: string): string | undefined;
  /** Ids remembered. */
  readonly size: number;
}

/** Builds the map; `maxIds` defaults to 100,000. */
export function responseOwners(maxIds = DEFAULT_MAX_IDS): ResponseOwners {
  const ids = new LRUCache<string, string>({ max: maxIds });
  return {
    remember(id, provider) {
      if (ids.get(id) !== provider) ids.set(id, provider);
    },
    owner: (id) => ids.get(id),
    get size() {
      return ids.size;
    },
  };
}

/**
 * The one target a request that continues provider-side state goes to, never a fallback: the model's
 * target on the provider that holds the state when it is known and serves the model; otherwise the
 * model's first target (the provider it would go to without failures, so the one that most likely made
 * it). Should that provider not hold it, it answers so itself (OpenAI: 400 `previous_response_not_found`),
 * which is relayed as it is: never a silently new conversation on another provider.
 */
export function pinnedTarget<T extends RelayTarget>(targets: readonly T[], owner: string | undefined): T {
  return (owner === undefined ? undefined : targets.find((t) => t.provider === owner)) ?? targets[0]!;
}
