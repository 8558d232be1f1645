// One upstream's cached lists and server facts, refreshed on list_changed, plus the session state a pool replays.
import type {
  Prompt,
  Resource,
  ResourceTemplateType as ResourceTemplate,
  Tool,
} from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import type { LoadedList, LoadedLists, McpLists } from './mcp-client.js';
import { GatewayError } from '../../errors.js';
import type { McpCacheHint, McpListKind, McpServerInfo, McpUpstream } from './mcp-upstream.js';

/** What every kind of upstream answers straight from its catalogue. */
export type CatalogSurface = Pick<
  McpUpstream,
  | 'info'
  | 'tools'
  | 'resources'
  | 'resourceTemplates'
  | 'prompts'
  | 'listCacheHint'
  | 'onToolsChanged'
  | 'onListChanged'
  | 'onResourceUpdated'
  | 'refreshExpiredLists'
>;

/** Most items kept per list (a server must not grow our memory without bound). */
const MAX_ITEMS = 10_000;
/** Most resource URIs subscribed at once per upstream. */
const MAX_SUBSCRIPTIONS = 10_000;

const KINDS: readonly McpListKind[] = ['tools', 'resources', 'resourceTemplates', 'prompts'];

/**
 * The lists (`tools`, `resources`, `resourceTemplates`, `prompts`) and server facts of one upstream, shared by
 * every process or session of it. A `list_changed` refreshes that list once however many arrive while a
 * refresh runs (one more runs after it), then tells the listeners. It also keeps what a 2025 session carries
 * as state — the subscribed resource URIs and the log level — so a pool can give them to every process,
 * including ones started later.
 */
export class Catalog {
  private lists: McpLists = { tools: [], resources: [], resourceTemplates: [], prompts: [] };
  private readonly hints = new Map<McpListKind, McpCacheHint>();
  /** When each list was last loaded (its hint's `ttlMs` counts from then). */
  private readonly loadedAt = new Map<McpListKind, number>();
  /** The pool's loader for a list the catalogue reloads on its own (undefined: no connection is ready). */
  private reload: ((kind: McpListKind) => (() => Promise<LoadedList>) | undefined) | undefined;
  private facts: McpServerInfo | undefined;
  private readonly listListeners: Array<(kind: McpListKind) => void> = [];
  private readonly updateListeners: Array<(uri: string) => void> = [];
  private readonly refreshing = new Map<McpListKind, Promise<void>>();
  private readonly again = new Set<McpListKind>();
  /** Resource URIs some downstream client subscribed to (2025 `resources/subscribe`, 2026 listen filter). */
  readonly subscriptions = new Set<string>();
  /** The last `logging/setLevel` level, replayed to processes started later. */
  logLevel: string | undefined;

  /** `now`: the clock list ages are measured with, in ms (injectable for tests). Default `performance.now`. */
  constructor(
    private readonly server: string,
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The `McpUpstream` methods an upstream answers from this catalogue, to spread into it. */
  surface(): CatalogSurface {
    return {
      info: () => this.info(),
      tools: () => this.tools(),
      resources: () => this.resources(),
      resourceTemplates: () => this.resourceTemplates(),
      prompts: () => this.prompts(),
      listCacheHint: (kind) => this.cacheHint(kind),
      onToolsChanged: (listener) =>
        this.onListChanged((kind) => {
          if (kind === 'tools') listener();
        }),
      onListChanged: (listener) => this.onListChanged(listener),
      onResourceUpdated: (listener) => this.onResourceUpdated(listener),
      refreshExpiredLists: () => this.refreshExpired(),
    };
  }

  /** How the catalogue reloads a list past its `ttlMs` (the pool's own way to load one). */
  reloadWith(loader: (kind: McpListKind) => (() => Promise<LoadedList>) | undefined): void {
    this.reload = loader;
  }

  /**
   * Reloads every list whose SEP-2549 `ttlMs` (above 0) has passed since it was loaded, and resolves once
   * they are in: a 2026-07-28 server's hint bounds how long its list may be kept, and its `list_changed`
   * reaches only listeners. Listeners hear of a reloaded list only when it changed. A reload that fails
   * keeps the held list (logged) for another `ttlMs`.
   */
  async refreshExpired(): Promise<void> {
    const now = this.now();
    const due: Array<Promise<void>> = [];
    for (const [kind, hint] of this.hints) {
      if (hint.ttlMs <= 0 || now - (this.loadedAt.get(kind) ?? now) < hint.ttlMs) continue;
      const running = this.reloading(kind, this.reload?.(kind), true);
      if (running !== undefined) due.push(running);
    }
    await Promise.all(due);
  }

  info(): McpServerInfo | undefined {
    return this.facts;
  }

  tools(): readonly Tool[] {
    return this.lists.tools;
  }
  resources(): readonly Resource[] {
    return this.lists.resources;
  }
  resourceTemplates(): readonly ResourceTemplate[] {
    return this.lists.resourceTemplates;
  }
  prompts(): readonly Prompt[] {
    return this.lists.prompts;
  }
  cacheHint(kind: McpListKind): McpCacheHint | undefined {
    return this.hints.get(kind);
  }

  /** Takes a full load (at start, or once a server that was down answers); `announce` tells the listeners. */
  set(info: McpServerInfo, lists: LoadedLists, announce: boolean): void {
    this.facts = info;
    for (const kind of KINDS) this.store(kind, lists[kind]);
    if (announce) for (const kind of KINDS) this.announce(kind);
  }

  onListChanged(listener: (kind: McpListKind) => void): void {
    this.listListeners.push(listener);
  }

  onResourceUpdated(listener: (uri: string) => void): void {
    this.updateListeners.push(listener);
  }

  resourceUpdated(uri: string): void {
    for (const listener of this.updateListeners) listener(uri);
  }

  /** Reloads `kind` with `load` (undefined when no connection is ready: the next change retries). */
  refresh(kind: McpListKind, load: (() => Promise<LoadedList>) | undefined): void {
    void this.reloading(kind, load, false);
  }

  /**
   * The reload of `kind` running now, started with `load` if none is (never rejects: a failure is logged).
   * `quiet` (a TTL reload) tells the listeners only when the list changed.
   */
  private reloading(
    kind: McpListKind,
    load: (() => Promise<LoadedList>) | undefined,
    quiet: boolean,
  ): Promise<void> | undefined {
    const current = this.refreshing.get(kind);
    if (current !== undefined) {
      if (!quiet) this.again.add(kind);
      return current;
    }
    if (load === undefined) return undefined;
    const running = load()
      .then((loaded) => {
        const before = quiet ? JSON.stringify(this.lists[kind]) : undefined;
        this.store(kind, loaded);
        if (before === undefined || before !== JSON.stringify(this.lists[kind])) this.announce(kind);
      })
      .catch((error: unknown) => {
        this.log.warn({ err: error, list: kind }, 'MCP list refresh failed');
        // A server that cannot answer now is asked again one ttlMs later, not on every list request.
        if (quiet) this.loadedAt.set(kind, this.now());
      })
      .finally(() => {
        this.refreshing.delete(kind);
        if (this.again.delete(kind)) this.refresh(kind, load);
      });
    this.refreshing.set(kind, running);
    return running;
  }

  /**
   * Records what a session-state request changes: `resources/subscribe` / `unsubscribe` and `logging/setLevel`.
   * Returns false for any other method. Throws when the subscription set is full.
   */
  remember(method: string, params: Record<string, unknown> | undefined): boolean {
    const uri = typeof params?.uri === 'string' ? params.uri : undefined;
    if (method === 'resources/subscribe' && uri !== undefined) {
      if (!this.subscriptions.has(uri) && this.subscriptions.size >= MAX_SUBSCRIPTIONS) {
        throw new GatewayError(
          'GW_BULKHEAD_FULL',
          `MCP server "${this.server}": at most ${MAX_SUBSCRIPTIONS} resource subscriptions per MCP server`,
        );
      }
      this.subscriptions.add(uri);
      return true;
    }
    if (method === 'resources/unsubscribe' && uri !== undefined) {
      this.subscriptions.delete(uri);
      return true;
    }
    if (method === 'logging/setLevel' && typeof params?.level === 'string') {
      this.logLevel = params.level;
      return true;
    }
    return false;
  }

  /** The session-state requests a fresh 2025 connection needs to match the others. */
  replay(): Array<{ method: string; params: Record<string, unknown> }> {
    const requests: Array<{ method: string; params: Record<string, unknown> }> = [];
    if (this.logLevel !== undefined)
      requests.push({ method: 'logging/setLevel', params: { level: this.logLevel } });
    for (const uri of this.subscriptions) requests.push({ method: 'resources/subscribe', params: { uri } });
    return requests;
  }

  private store(kind: McpListKind, loaded: LoadedList): void {
    (this.lists as Record<McpListKind, unknown[]>)[kind] = loaded.items.slice(0, MAX_ITEMS);
    this.loadedAt.set(kind, this.now());
    if (loaded.hint === undefined) this.hints.delete(kind);
    else this.hints.set(kind, loaded.hint);
  }

  private announce(kind: McpListKind): void {
    for (const listener of this.listListeners) listener(kind);
  }
}

/** Session-state methods: a pool sends them to every process (2025) or folds them into its listen stream (2026). */
export const SESSION_STATE_METHODS = new Set([
  'logging/setLevel',
  'resources/subscribe',
  'resources/unsubscribe',
]);
