// HTTP tasks for the load runner: one request each, on a keep-alive pool or a fresh connection per request.
import { Client, Pool } from 'undici';
import type { Dispatcher } from 'undici';
import type { Task } from './load.js';

export interface HttpTaskRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Status that counts as success; default any 2xx. */
  expectStatus?: number;
}

export interface HttpTaskOptions {
  /** Pool size. Default 1. */
  connections?: number;
  /** Open a new TCP connection per request and close it after (the "before" pattern of several seeds). */
  fresh?: boolean;
}

/**
 * Builds a task that sends one request to `target` (loopback only) and reads the whole body, so the
 * connection goes back to the pool. A non-success status is reported as code `HTTP_<status>`.
 */
export function httpTask(
  target: string,
  request: HttpTaskRequest | ((i: number) => HttpTaskRequest),
  options: HttpTaskOptions = {},
): { task: Task; close(): Promise<void> } {
  assertLoopback(target);
  const pool =
    options.fresh === true ? undefined : new Pool(target, { connections: options.connections ?? 1 });
  let i = 0;
  const task: Task = async (signal) => {
    const spec = typeof request === 'function' ? request(i++) : request;
    const dispatcher: Dispatcher = pool ?? new Client(target, { pipelining: 0 });
    try {
      const response = await dispatcher.request({
        path: spec.path,
        method: spec.method ?? 'GET',
        headers: spec.headers,
        body: spec.body,
        signal,
      });
      await response.body.dump({ limit: Infinity });
      const ok =
        spec.expectStatus === undefined
          ? response.statusCode < 300 && response.statusCode >= 200
          : response.statusCode === spec.expectStatus;
      return ok ? { ok } : { ok, code: `HTTP_${response.statusCode}` };
    } finally {
      if (pool === undefined) await dispatcher.close();
    }
  };
  return { task, close: async () => pool?.close() };
}

/**
 * Throws unless `url` points at this machine (localhost, 127.0.0.0/8 or ::1): benchmarks never send load
 * anywhere else. Checked before any connection is made.
 */
export function assertLoopback(url: string): void {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  if (!loopback) throw new Error(`benchmarks only target loopback addresses; refusing ${url}`);
}
