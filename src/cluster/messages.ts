// The IPC protocol between the `--workers` supervisor and its workers (Node's advanced serialization).
import type { MetricObjectWithValues, MetricValue } from 'prom-client';

/** One registry's metrics as `Registry.getMetricsAsJSON()` returns them. */
export type MetricsSnapshot = Array<MetricObjectWithValues<MetricValue<string>>>;

/** Supervisor → worker, once, in reply to its hello: what to serve. */
export interface StartMessage {
  readonly type: 'slipstream:start';
  /** 1..N: names the worker in logs, metrics labels and `x-slipstream-worker`. */
  readonly worker: number;
  /** N: how many workers share the machine (each runs its share of every stdio MCP pool). */
  readonly workers: number;
  /** The config text the supervisor validated, and its file name (for messages): every worker serves the same. */
  readonly configText: string;
  readonly configFile: string;
  /** Port to bind instead of the config's (a `port: 0` config's port, once the first worker resolved it). */
  readonly port?: number;
  /** Bind with `SO_REUSEPORT` (one socket per worker) instead of sharing the primary's handle. */
  readonly reusePort: boolean;
  /**
   * With `mcp:`: the directory (mode 0700) where every worker also listens on `worker-<n>.sock`, and the
   * key signing `/mcp` session ids when the config sets no `mcp.sessionSecret` (one per supervisor run).
   */
  readonly sessions?: { readonly dir: string; readonly secret: string };
}

/** Supervisor → worker: a question with an id; the worker answers with a {@link Answer} of the same id. */
export type Question =
  | { readonly type: 'slipstream:metrics'; readonly id: number }
  | { readonly type: 'slipstream:purge'; readonly id: number; readonly prefix: string };

/**
 * Worker → supervisor. `hello` comes first, once the worker listens on the channel (a message sent before
 * that would be lost); `ready` once it serves, with its URL.
 */
export type WorkerMessage =
  | { readonly type: 'slipstream:hello' }
  | { readonly type: 'slipstream:ready'; readonly url: string }
  | Answer;

/** A worker's answer to a {@link Question}: its value, or why it failed. */
export type Answer =
  | { readonly type: 'slipstream:answer'; readonly id: number; readonly value: unknown }
  | { readonly type: 'slipstream:answer'; readonly id: number; readonly error: string };

function typed(message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const type = (message as { type?: unknown }).type;
  return typeof type === 'string' ? type : undefined;
}

/** Narrows an IPC message to the start message. */
export function isStart(message: unknown): message is StartMessage {
  return typed(message) === 'slipstream:start';
}

/** Narrows an IPC message to a supervisor's question. */
export function isQuestion(message: unknown): message is Question {
  const type = typed(message);
  return type === 'slipstream:metrics' || type === 'slipstream:purge';
}

/** Narrows an IPC message to a worker's message (anything else on the channel is ignored). */
export function isWorkerMessage(message: unknown): message is WorkerMessage {
  const type = typed(message);
  return type === 'slipstream:hello' || type === 'slipstream:ready' || type === 'slipstream:answer';
}
