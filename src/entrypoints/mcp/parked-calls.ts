// Calls of 2025-era servers parked between a 2026-07-28 client's input_required rounds (era translation).
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Progress } from '@modelcontextprotocol/server';
import { GatewayError } from '../../errors.js';
import type {
  McpNotification,
  McpServerRequest,
  McpServerRequestHandler,
} from '../../upstreams/mcp/mcp-upstream.js';

export interface ParkedCallsOptions {
  /** How long a parked call waits for the client's retry before it is cancelled upstream, in ms. Default 60_000. */
  waitMs?: number;
  /** Calls parked at once; a call that would park past it is cancelled with `GW_BULKHEAD_FULL`. Default 1_000. */
  maxParked?: number;
}

/** What the upstream call is given to reach its client, whichever request of the flow is the current one. */
export interface ParkedHooks {
  /** Aborted when the flow is abandoned (park expired, client gone, shutdown): cancels the call upstream. */
  signal: AbortSignal;
  onServerRequest: McpServerRequestHandler;
  onNotification: (notification: McpNotification) => void;
  onProgress: (progress: Progress) => void;
}

/** One downstream request of a flow: the first one, or a retry carrying `requestState` and `inputResponses`. */
export interface FlowRequest {
  /**
   * What a retry must match: the verified principal, the method and its target (tool name, prompt name).
   * A `requestState` minted under one binding is refused under another.
   */
  binding: string;
  requestState: string | undefined;
  inputResponses: Record<string, unknown> | undefined;
  /** The downstream request's own signal: its client going away abandons the flow. */
  signal: AbortSignal;
  onNotification?: (notification: McpNotification) => void;
  onProgress?: (progress: Progress) => void;
}

/** The 2026-07-28 result asking the client for input (spec 2026-07-28 basic/patterns/mrtr). */
export interface InputRequiredResult {
  [key: string]: unknown;
  resultType: 'input_required';
  inputRequests: Record<string, McpServerRequest>;
  requestState: string;
}

export interface ParkedCalls {
  /**
   * Serves one request of a flow: the first starts the upstream call with `start`; a retry (its
   * `requestState` set) hands its `inputResponses` to the parked call's waiting server requests. Resolves
   * with the call's result, or with an {@link InputRequiredResult} when the upstream asks for input (the
   * call stays in flight upstream, parked, until the retry or `waitMs`). Throws the call's own error,
   * `GW_MCP_REQUEST_STATE_INVALID` / `GW_MCP_REQUEST_STATE_EXPIRED` for a retry, `GW_BULKHEAD_FULL` past
   * `maxParked`, `GW_CLIENT_CLOSED` when the client went away.
   */
  serve<T>(request: FlowRequest, start: (hooks: ParkedHooks) => Promise<T>): Promise<T | InputRequiredResult>;
  /** Calls parked now. */
  size(): number;
  /** Cancels every parked call (shutdown). */
  close(): void;
}

const DEFAULT_WAIT_MS = 60_000;
const DEFAULT_MAX_PARKED = 1_000;
/** Marks our own states, so a state from elsewhere is told apart from a tampered one of ours. */
const STATE_PREFIX = 'slipstream.park.v1.';

/** A server→client request waiting for the client's answer. */
interface Waiting {
  request: McpServerRequest;
  resolve: (result: Record<string, unknown>) => void;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** One upstream call and the downstream requests that carry it through its rounds. */
class Flow<T> {
  readonly id = randomUUID();
  /** Rounds answered with input_required so far; a state names the round it was minted for. */
  round = 0;
  readonly controller = new AbortController();
  outcome: Outcome<T> | undefined;
  readonly waiting = new Map<string, Waiting>();
  /** The request carrying the flow now (undefined while parked). */
  current: FlowRequest | undefined;
  timer: NodeJS.Timeout | undefined;
  private keys = 0;
  private wake: (() => void) | undefined;

  nextKey(method: string): string {
    return `${method.split('/')[0]}-${++this.keys}`;
  }
  /** Something the serving request waits for happened (a server request, the outcome). */
  changed(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
  untilChanged(): Promise<void> {
    return new Promise((resolve) => (this.wake = resolve));
  }
}

/**
 * Era translation of server→client requests (docs/mcp.md "Relaying"): a 2025-era server asks for
 * sampling, elicitation or roots with a real request during a call, but a 2026-07-28 client can only be
 * asked through its request's result. So the call stays in flight on the 2025 connection (its interactive
 * turn held), the client's request is answered `input_required` with the server's requests as
 * `inputRequests` and a `requestState` naming the parked call, and the client's retry (a new request, same
 * params plus `inputResponses` and the byte-exact `requestState`) answers them and waits for what comes
 * next: the result, or another round. The state is an HMAC under a per-process random key over the
 * flow id, the round and the binding (principal, method, target), so it cannot be forged, replayed onto
 * another caller or request, or reused for an answered round. Parks are bounded in time and number; an
 * abandoned one is cancelled upstream (`notifications/cancelled`), which frees its turn.
 */
export function parkedCalls(options: ParkedCallsOptions = {}): ParkedCalls {
  const waitMs = options.waitMs ?? DEFAULT_WAIT_MS;
  const maxParked = options.maxParked ?? DEFAULT_MAX_PARKED;
  const key = randomBytes(32);
  const flows = new Map<string, Flow<unknown>>();

  const mac = (body: string, binding: string) =>
    createHmac('sha256', key).update(`${body}\n${binding}`).digest();
  const mint = (flow: Flow<unknown>, binding: string): string => {
    const body = Buffer.from(JSON.stringify({ id: flow.id, round: flow.round })).toString('base64url');
    return `${STATE_PREFIX}${body}.${mac(body, binding).toString('base64url')}`;
  };
  /** The flow id and round a state names, once its MAC proves we minted it for this binding. */
  const verify = (state: string, binding: string): { id: string; round: number } => {
    const invalid = () =>
      new GatewayError(
        'GW_MCP_REQUEST_STATE_INVALID',
        'requestState was not issued by this gateway for this caller and request (tampered, or another caller’s or request’s)',
      );
    if (!state.startsWith(STATE_PREFIX)) throw invalid();
    const [body, tag, extra] = state.slice(STATE_PREFIX.length).split('.');
    if (body === undefined || tag === undefined || extra !== undefined) throw invalid();
    // Compared as text: base64url decoding ignores a last character's spare bits, the text does not.
    const expected = Buffer.from(mac(body, binding).toString('base64url'));
    const given = Buffer.from(tag);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid();
    return JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { id: string; round: number };
  };

  /** Ends a flow: forgotten, and its call cancelled upstream unless it already settled. */
  const abandon = (flow: Flow<unknown>, reason: GatewayError) => {
    flows.delete(flow.id);
    clearTimeout(flow.timer);
    if (flow.outcome === undefined) flow.controller.abort(reason);
  };

  const start = <T>(request: FlowRequest, run: (hooks: ParkedHooks) => Promise<T>): Flow<T> => {
    const flow = new Flow<T>();
    const hooks: ParkedHooks = {
      signal: flow.controller.signal,
      onServerRequest: (serverRequest, signal) =>
        new Promise((resolve, reject) => {
          const key = flow.nextKey(serverRequest.method);
          flow.waiting.set(key, { request: serverRequest, resolve });
          signal.addEventListener(
            'abort',
            () => {
              flow.waiting.delete(key);
              reject(signal.reason as Error);
            },
            { once: true },
          );
          flow.changed();
        }),
      // Log lines and progress go to the request carrying the flow; while parked there is none to take them.
      onNotification: (notification) => flow.current?.onNotification?.(notification),
      onProgress: (progress) => flow.current?.onProgress?.(progress),
    };
    flow.current = request;
    run(hooks).then(
      (value) => {
        flow.outcome = { ok: true, value };
        flow.changed();
      },
      (error: unknown) => {
        flow.outcome = { ok: false, error };
        flow.changed();
      },
    );
    return flow;
  };

  /** Answers the client with the server requests waiting now, and parks the flow until its retry. */
  const park = <T>(flow: Flow<T>, request: FlowRequest): InputRequiredResult => {
    if (!flows.has(flow.id)) {
      if (flows.size >= maxParked) {
        const full = new GatewayError(
          'GW_BULKHEAD_FULL',
          `${maxParked} MCP calls are already waiting for their clients' input; try again later`,
          { retryAfterS: 1 },
        );
        abandon(flow, full);
        throw full;
      }
      flows.set(flow.id, flow);
    }
    flow.round++;
    flow.timer = setTimeout(
      () =>
        abandon(
          flow as Flow<unknown>,
          new GatewayError(
            'GW_MCP_REQUEST_STATE_EXPIRED',
            `the client did not answer the input request within ${waitMs} ms`,
          ),
        ),
      waitMs,
    );
    flow.timer.unref();
    const inputRequests = Object.fromEntries(
      [...flow.waiting].map(([key, waiting]) => [key, waiting.request]),
    );
    return {
      resultType: 'input_required',
      inputRequests,
      requestState: mint(flow, request.binding),
    };
  };

  /** Carries the flow on `request` until the call settles or asks for input. */
  const carry = async <T>(flow: Flow<T>, request: FlowRequest): Promise<T | InputRequiredResult> => {
    flow.current = request;
    const gone = () => abandon(flow, new GatewayError('GW_CLIENT_CLOSED', 'the client cancelled the call'));
    if (request.signal.aborted) gone();
    else request.signal.addEventListener('abort', gone, { once: true });
    try {
      for (;;) {
        const outcome = flow.outcome;
        if (outcome !== undefined) {
          flows.delete(flow.id);
          if (outcome.ok) return outcome.value;
          throw outcome.error;
        }
        if (flow.waiting.size > 0 && !request.signal.aborted) {
          // Requests a server sends together (one stdio chunk) arrive a few ticks apart: ask them in one round.
          await new Promise((resolve) => setImmediate(resolve));
          if (flow.outcome === undefined && flow.waiting.size > 0) return park(flow, request);
          continue;
        }
        await flow.untilChanged();
      }
    } finally {
      request.signal.removeEventListener('abort', gone);
      flow.current = undefined;
    }
  };

  /** A retry: the parked flow its state names, with the client's answers handed to its waiting requests. */
  const resume = (request: FlowRequest, state: string): Flow<unknown> => {
    const claim = verify(state, request.binding);
    const flow = flows.get(claim.id);
    if (flow === undefined || flow.round !== claim.round || flow.current !== undefined) {
      throw new GatewayError(
        'GW_MCP_REQUEST_STATE_EXPIRED',
        `the call this requestState names no longer waits for input (answered already, cancelled, finished, past ${waitMs} ms, or parked by another gateway process): call again`,
      );
    }
    clearTimeout(flow.timer);
    for (const [key, response] of Object.entries(request.inputResponses ?? {})) {
      const waiting = flow.waiting.get(key);
      if (waiting === undefined || response === null || typeof response !== 'object') continue;
      flow.waiting.delete(key);
      waiting.resolve(response as Record<string, unknown>);
    }
    // Requests the retry left unanswered stay waiting: the next round asks them again.
    return flow;
  };

  return {
    serve<T>(request: FlowRequest, run: (hooks: ParkedHooks) => Promise<T>) {
      try {
        const flow =
          request.requestState === undefined
            ? start(request, run)
            : (resume(request, request.requestState) as Flow<T>);
        return carry(flow, request);
      } catch (error) {
        return Promise.reject(error);
      }
    },
    size: () => flows.size,
    close() {
      for (const flow of [...flows.values()]) {
        abandon(flow, new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down'));
      }
    },
  };
}
