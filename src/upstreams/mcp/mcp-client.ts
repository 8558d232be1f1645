// One connected upstream MCP client (v2 SDK), either era: lists, requests with per-call relaying, notifications.
import {
  CLIENT_CAPABILITIES_META_KEY,
  Client,
  LOG_LEVEL_META_KEY,
  ProtocolError,
} from '@modelcontextprotocol/client';
import type {
  ClientCapabilities,
  McpSubscription,
  PriorDiscovery,
  Prompt,
  RequestMethod,
  Resource,
  ResourceTemplateType as ResourceTemplate,
  StandardSchemaV1,
  SubscriptionFilter,
  Tool,
  Transport,
  VersionNegotiationMode,
} from '@modelcontextprotocol/client';
import type { McpEraSetting } from '../../config/mcp-schema.js';
import { GatewayError } from '../../errors.js';
import { NO_SDK_TIMEOUT_MS, upstreamFailure } from './mcp-upstream.js';
import type {
  McpCacheHint,
  McpEra,
  McpListKind,
  McpRequestOptions,
  McpServerInfo,
  McpServerRequest,
} from './mcp-upstream.js';

export interface McpClientOptions {
  server: string;
  /** `auto` probes `server/discover` (once: later connects pass the verdict as `prior`). */
  era: McpEraSetting;
  /** A verdict from an earlier connect to the same server: no probe at all. */
  prior?: PriorDiscovery;
  /** Declared on 2025 connections: the union of what downstream clients may support. */
  declared: ClientCapabilities;
  /** A server's list changed (`notifications/*\/list_changed`, either era). */
  onListChanged: (kind: McpListKind) => void;
  onResourceUpdated: (uri: string) => void;
  /** A log line no call can be given (nobody asked, or several calls could have caused it). */
  onUnattributedLog: (params: Record<string, unknown>) => void;
}

/** The cached lists of one server. */
export interface McpLists {
  tools: Tool[];
  resources: Resource[];
  resourceTemplates: ResourceTemplate[];
  prompts: Prompt[];
}

/** One loaded list and the cache hint its result carried (2026-07-28 servers; none from 2025 ones). */
export interface LoadedList {
  items: McpLists[McpListKind];
  hint: McpCacheHint | undefined;
}
export type LoadedLists = Record<McpListKind, LoadedList>;

/** The SEP-2549 `ttlMs` / `cacheScope` of a cacheable result, when both are well-formed. */
export function cacheHintOf(result: Record<string, unknown>): McpCacheHint | undefined {
  const { ttlMs, cacheScope } = result;
  if (typeof ttlMs !== 'number' || !Number.isInteger(ttlMs) || ttlMs < 0) return undefined;
  if (cacheScope !== 'public' && cacheScope !== 'private') return undefined;
  return { ttlMs, cacheScope };
}

/** A request answered by the downstream client: the in-flight call that may be asked, and who asks it. */
interface Attributed {
  options: McpRequestOptions;
}

/** Server→client request methods a downstream client can answer (2025 requests, 2026 input requests). */
const RELAYED = ['sampling/createMessage', 'elicitation/create', 'roots/list'] as const;
const CAPABILITY_OF: Record<string, keyof ClientCapabilities> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};
/** Multi-round-trip rounds per request before giving up (spec 2026-07-28 basic/patterns/mrtr: bounded). */
const MAX_INPUT_ROUNDS = 8;
/** Calls waiting for their turn as the attributed call of this connection. */
const MAX_TURN_WAITERS = 10_000;

/**
 * The SDK runs notification handlers a microtask late but settles a response at once, so a progress
 * notification or log line sent just before a result (one stdio chunk) would reach a request already
 * finished and be dropped. Delivering responses a microtask late too keeps the wire's order.
 */
function keepNotificationsFirst(transport: Transport): void {
  const deliver = transport.onmessage;
  if (deliver === undefined) return;
  transport.onmessage = (message, extra) => {
    if ('method' in message) deliver(message, extra);
    else queueMicrotask(() => deliver(message, extra));
  };
}

/** The SDK's per-era wire codec, as far as the result check below uses it (internal to the SDK, stable in 2.4). */
interface WireCodec {
  readonly era: string;
  validateResult(
    method: string,
    raw: unknown,
  ): { ok: true; value: unknown } | { ok: false; reason: string; message?: string };
}
type ResultSchema = StandardSchemaV1<unknown, unknown>;
const resultSchemas = new WeakMap<WireCodec, Map<string, ResultSchema | null>>();

/**
 * Methods whose 2026-07-28 result the SDK's decoder (`decodeResult`) has already parsed against the wire
 * schema of the same shape before it runs the request's result check: a second parse would only repeat
 * the first (a zod parse per tool call; too small for bench/RESULTS.md's instruction counts to show, but
 * pure repetition). Their check is a pass-through; `test/upstreams/mcp/stdio-framing.test.ts` proves a
 * malformed result is still refused on that era.
 */
const DECODER_CHECKED = new Set(['tools/call']);
const PASS_THROUGH: ResultSchema = {
  '~standard': { version: 1, vendor: 'slipstream', validate: (value) => ({ value }) },
};

/**
 * The result check the SDK applies to `method` on `client`'s negotiated era, built once per era and method.
 * Without a schema argument `Client.request()` builds the same check on every call, and first probes it
 * with a parse of `undefined` that fails and renders a zod error: about 50 us of CPU per tool call, a
 * quarter of the SDK's share (profile in bench/RESULTS.md, 2026-12-01 18:30). Handing it this one
 * validates exactly as the SDK does (its codec's `validateResult`, or nothing more where its decoder has
 * checked already: `DECODER_CHECKED`), once. Undefined when the SDK does not
 * look as expected or the method is not in the era: the caller then lets the SDK build its own.
 */
export function resultSchemaFor(client: Client, method: string): ResultSchema | undefined {
  const resolve = (client as unknown as { _resolveOutboundCodec?: (method: string) => unknown })
    ._resolveOutboundCodec;
  if (typeof resolve !== 'function') return undefined;
  const codec = resolve.call(client, method) as WireCodec | undefined;
  if (codec === undefined || typeof codec.validateResult !== 'function') return undefined;
  let byMethod = resultSchemas.get(codec);
  if (byMethod === undefined) {
    byMethod = new Map();
    resultSchemas.set(codec, byMethod);
  }
  let schema = byMethod.get(method);
  if (schema === undefined) {
    schema = resultCheck(codec, method);
    byMethod.set(method, schema);
  }
  return schema ?? undefined;
}

/** The check of `method`'s result on `codec`'s era: null when the era has no such method (the SDK refuses it). */
function resultCheck(codec: WireCodec, method: string): ResultSchema | null {
  const probe = codec.validateResult(method, undefined);
  if (!probe.ok && probe.reason === 'not-in-era') return null;
  if (codec.era === '2026-07-28' && DECODER_CHECKED.has(method)) return PASS_THROUGH;
  return {
    '~standard': {
      version: 1,
      vendor: 'slipstream',
      validate(value) {
        const outcome = codec.validateResult(method, value);
        if (outcome.ok) return { value: outcome.value };
        const message =
          outcome.reason === 'invalid' ? (outcome.message ?? 'invalid') : `not-in-era: ${method}`;
        return { issues: [{ message }] };
      },
    },
  };
}

/** The capabilities declared on 2025 connections for the configured relayed requests. */
export function declaredCapabilities(
  relayed: readonly ('sampling' | 'elicitation' | 'roots')[],
): ClientCapabilities {
  const declared: ClientCapabilities = {};
  if (relayed.includes('sampling')) declared.sampling = {};
  if (relayed.includes('elicitation')) declared.elicitation = { form: {} };
  if (relayed.includes('roots')) declared.roots = {};
  return declared;
}

/** The SDK's negotiation mode for the configured era. */
export function negotiationMode(era: McpEraSetting): VersionNegotiationMode {
  if (era === 'auto') return 'auto';
  return era === '2026-07-28' ? { pin: '2026-07-28' } : 'legacy';
}

/**
 * Wraps one v2 SDK `Client` on one transport. The era comes from the config, or from a `prior` verdict
 * (the pool probes once); requests carry the caller's `_meta` and, on 2026-07-28, exactly the downstream
 * client's capabilities (spec 2026-07-28 basic/lifecycle: per-request `_meta`). Server→client requests and
 * log lines go to the one call they belong to: a call that wants them runs alone among such calls on this
 * connection, because on stdio and 2025 sessions nothing on the wire names the request that caused them
 * (a request that no call can be given is refused with -32601, never guessed). On 2026-07-28
 * `input_required` results are fulfilled through the same per-call handler, round by round.
 */
export class McpClient {
  readonly client: Client;
  inFlight = 0;
  private attributed: Attributed | undefined;
  private readonly turnWaiters: Array<() => void> = [];
  private listening: McpSubscription | undefined;

  constructor(private readonly options: McpClientOptions) {
    this.client = new Client(
      { name: 'slipstream', version: '0.1.0' },
      {
        capabilities: options.declared,
        versionNegotiation: { mode: negotiationMode(options.era) },
        // Rounds are driven per call (onServerRequest) so each reaches the downstream client that caused it.
        inputRequired: { autoFulfill: false },
      },
    );
    this.client.onerror = () => {}; // transport noise; failures reach the calls themselves
    const list = (kind: McpListKind) => () => options.onListChanged(kind);
    this.client.setNotificationHandler('notifications/tools/list_changed', list('tools'));
    this.client.setNotificationHandler('notifications/prompts/list_changed', list('prompts'));
    this.client.setNotificationHandler('notifications/resources/list_changed', () => {
      options.onListChanged('resources');
      options.onListChanged('resourceTemplates');
    });
    this.client.setNotificationHandler('notifications/resources/updated', (notification) =>
      options.onResourceUpdated(notification.params.uri),
    );
    this.client.setNotificationHandler('notifications/message', (notification) => {
      const listener = this.attributed?.options.onNotification;
      const params = notification.params as Record<string, unknown>;
      if (listener !== undefined) listener({ method: notification.method, params });
      else options.onUnattributedLog(params);
    });
    for (const method of RELAYED) {
      const capability = CAPABILITY_OF[method]!;
      if (options.declared[capability] === undefined) continue;
      this.client.setRequestHandler(method, async (request, ctx) => {
        const result = await this.relay({ method, params: request.params }, ctx.mcpReq.signal);
        return result as never;
      });
    }
  }

  /** Connects (probing `server/discover` when the era is `auto` and no verdict is known) and returns the verdict. */
  async connect(transport: Transport, timeoutMs: number): Promise<PriorDiscovery> {
    await this.client.connect(transport, {
      timeout: timeoutMs,
      ...(this.options.prior === undefined ? {} : { prior: this.options.prior }),
    });
    keepNotificationsFirst(transport);
    const discover = this.client.getDiscoverResult();
    return this.era() === 'modern' && discover !== undefined
      ? { kind: 'modern', discover }
      : { kind: 'legacy' };
  }

  era(): McpEra {
    return this.client.getProtocolEra() ?? 'legacy';
  }

  info(): McpServerInfo {
    return {
      era: this.era(),
      capabilities: this.client.getServerCapabilities() ?? {},
      instructions: this.client.getInstructions(),
      protocolVersion: this.client.getNegotiatedProtocolVersion(),
    };
  }

  /** Loads every list the server's capabilities offer (the SDK walks the pages, bounded by its page cap). */
  async loadLists(timeoutMs: number): Promise<LoadedLists> {
    const capabilities = this.client.getServerCapabilities() ?? {};
    const offered = (kind: McpListKind) =>
      kind === 'tools'
        ? capabilities.tools !== undefined
        : kind === 'prompts'
          ? capabilities.prompts !== undefined
          : capabilities.resources !== undefined;
    const kinds: McpListKind[] = ['tools', 'resources', 'resourceTemplates', 'prompts'];
    const loaded = await Promise.all(
      kinds.map((kind) =>
        offered(kind) ? this.loadList(kind, timeoutMs) : Promise.resolve({ items: [], hint: undefined }),
      ),
    );
    return Object.fromEntries(kinds.map((kind, at) => [kind, loaded[at]!])) as unknown as LoadedLists;
  }

  /** Loads one list (after its `list_changed`), with the server's SEP-2549 cache hint when it gave one. */
  async loadList(kind: McpListKind, timeoutMs: number): Promise<LoadedList> {
    const options = { timeout: timeoutMs, cacheMode: 'bypass' as const };
    const result: Record<string, unknown> =
      kind === 'tools'
        ? await this.client.listTools(undefined, options)
        : kind === 'resources'
          ? await this.client.listResources(undefined, options)
          : kind === 'resourceTemplates'
            ? await this.client.listResourceTemplates(undefined, options)
            : await this.client.listPrompts(undefined, options);
    return { items: result[kind] as LoadedList['items'], hint: cacheHintOf(result) };
  }

  /**
   * On 2026-07-28 change notifications come on a `subscriptions/listen` stream: (re)opens it with the list
   * kinds the server can announce and the resource URIs subscribed so far. A no-op on 2025 connections.
   */
  async listen(resourceUris: readonly string[]): Promise<void> {
    if (this.era() !== 'modern') return;
    const capabilities = this.client.getServerCapabilities() ?? {};
    const filter: SubscriptionFilter = {
      ...(capabilities.tools?.listChanged === true ? { toolsListChanged: true } : {}),
      ...(capabilities.prompts?.listChanged === true ? { promptsListChanged: true } : {}),
      ...(capabilities.resources?.listChanged === true ? { resourcesListChanged: true } : {}),
      ...(capabilities.resources?.subscribe === true && resourceUris.length > 0
        ? { resourceSubscriptions: [...resourceUris] }
        : {}),
    };
    const previous = this.listening;
    this.listening = undefined;
    await previous?.close();
    if (Object.keys(filter).length === 0) return;
    this.listening = await this.client.listen(filter, { timeout: NO_SDK_TIMEOUT_MS });
  }

  /** True when a call with these options must be the only attributed call on this connection. */
  needsTurn(options: McpRequestOptions): boolean {
    return (
      options.onNotification !== undefined ||
      (options.onServerRequest !== undefined && this.era() === 'legacy')
    );
  }

  /** True when an attributed call is running or waiting here (the pool prefers connections without one). */
  get busyAttributed(): boolean {
    return this.attributed !== undefined || this.turnWaiters.length > 0;
  }

  /**
   * Sends one request and resolves with its result. On 2026-07-28 the request's `_meta` declares the
   * downstream client's capabilities, and `input_required` answers are fulfilled by `onServerRequest`
   * (without one the input-required result itself is returned, for the caller to relay).
   */
  async request(
    method: string,
    params: Record<string, unknown> | undefined,
    options: McpRequestOptions,
  ): Promise<Record<string, unknown>> {
    this.inFlight++;
    const turn = this.needsTurn(options);
    try {
      if (turn) await this.takeTurn(options);
      return await this.send(method, params, options);
    } catch (error) {
      throw upstreamFailure(this.options.server, error, options.signal);
    } finally {
      if (turn) this.releaseTurn(options);
      this.inFlight--;
    }
  }

  async ping(timeoutMs: number): Promise<boolean> {
    try {
      if (this.era() === 'modern') await this.client.discover({ timeout: timeoutMs });
      else await this.client.ping({ timeout: timeoutMs });
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.listening?.close().catch(() => {});
    await this.client.close();
  }

  private async send(
    method: string,
    params: Record<string, unknown> | undefined,
    options: McpRequestOptions,
  ): Promise<Record<string, unknown>> {
    const modern = this.era() === 'modern';
    const meta: Record<string, unknown> = { ...options.meta };
    if (modern) meta[CLIENT_CAPABILITIES_META_KEY] = options.clientCapabilities ?? {};
    // The per-request log level is a 2026-07-28 envelope key; 2025 servers keep theirs from logging/setLevel.
    else delete meta[LOG_LEVEL_META_KEY];
    let current: Record<string, unknown> = {
      ...params,
      ...options.extraParams,
      ...(Object.keys(meta).length === 0
        ? {}
        : { _meta: { ...(params?._meta as object | undefined), ...meta } }),
    };
    const sdkOptions = {
      signal: options.signal,
      onprogress: options.onProgress,
      timeout: NO_SDK_TIMEOUT_MS,
      allowInputRequired: modern,
    };
    const schema = resultSchemaFor(this.client, method);
    for (let round = 1; ; round++) {
      const request = { method: method as RequestMethod, params: current };
      const result = (
        schema === undefined
          ? await this.client.request(request, sdkOptions)
          : await this.client.request(request, schema, sdkOptions)
      ) as Record<string, unknown>;
      if (result.resultType !== 'input_required' || options.onServerRequest === undefined) return result;
      if (round >= MAX_INPUT_ROUNDS) {
        throw new GatewayError(
          'GW_UPSTREAM_PROTOCOL',
          `MCP server "${this.options.server}" still asked for input after ${MAX_INPUT_ROUNDS} rounds`,
        );
      }
      current = { ...current, ...(await this.fulfil(result, options)) };
    }
  }

  /** Answers every input request of one `input_required` round through the call's own handler. */
  private async fulfil(
    result: Record<string, unknown>,
    options: McpRequestOptions,
  ): Promise<Record<string, unknown>> {
    const requests = (result.inputRequests ?? {}) as Record<string, McpServerRequest>;
    const entries = await Promise.all(
      Object.entries(requests).map(
        async ([key, request]) => [key, await this.answer(request, options, options.signal)] as const,
      ),
    );
    return {
      inputResponses: Object.fromEntries(entries),
      ...(typeof result.requestState === 'string' ? { requestState: result.requestState } : {}),
    };
  }

  /** A 2025 server→client request: relayed to the single attributed call, else refused. */
  private relay(request: McpServerRequest, signal: AbortSignal): Promise<Record<string, unknown>> {
    const call = this.attributed;
    if (call === undefined) {
      return Promise.reject(
        new ProtocolError(
          -32601,
          `${request.method}: no client request of this connection can answer it (it arrived outside an interactive call)`,
        ),
      );
    }
    return this.answer(request, call.options, AbortSignal.any([signal, call.options.signal]));
  }

  private answer(
    request: McpServerRequest,
    options: McpRequestOptions,
    signal: AbortSignal,
  ): Promise<Record<string, unknown>> {
    const capability = CAPABILITY_OF[request.method];
    const handler = options.onServerRequest;
    if (
      capability === undefined ||
      handler === undefined ||
      options.clientCapabilities?.[capability] === undefined
    ) {
      // Spec 2025-11-25 client/sampling (and elicitation, roots): a client without the capability does not
      // answer; -32601 is what such a client's SDK sends.
      return Promise.reject(
        new ProtocolError(
          -32601,
          `${request.method}: the calling client does not support ${capability ?? 'it'}`,
        ),
      );
    }
    return handler(request, signal);
  }

  private takeTurn(options: McpRequestOptions): Promise<void> {
    if (this.attributed === undefined) {
      this.attributed = { options };
      return Promise.resolve();
    }
    if (this.turnWaiters.length >= MAX_TURN_WAITERS) {
      return Promise.reject(
        new GatewayError(
          'GW_BULKHEAD_FULL',
          `MCP server "${this.options.server}": too many interactive calls waiting`,
          {
            retryAfterS: 1,
          },
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const at = this.turnWaiters.indexOf(go);
        if (at !== -1) this.turnWaiters.splice(at, 1);
        reject(options.signal.reason as Error);
      };
      const go = () => {
        options.signal.removeEventListener('abort', onAbort);
        this.attributed = { options };
        resolve();
      };
      if (options.signal.aborted) return onAbort();
      options.signal.addEventListener('abort', onAbort, { once: true });
      this.turnWaiters.push(go);
    });
  }

  private releaseTurn(options: McpRequestOptions): void {
    if (this.attributed?.options !== options) return;
    this.attributed = undefined;
    this.turnWaiters.shift()?.();
  }
}
