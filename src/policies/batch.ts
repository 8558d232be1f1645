// Batch policy: concurrent single-item GETs (`/quote/:symbol`) go upstream as one bulk call, split per caller.
import DataLoader from 'dataloader';
import { LRUCache } from 'lru-cache';
import { GatewayError } from '../errors.js';
import { bufferReply } from '../pipeline/buffer.js';
import { discard } from '../pipeline/compose.js';
import { untilAborted } from '../pipeline/until-aborted.js';
import type { Call, Handler, Policy, Reply } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';

export interface BatchOptions {
  route: string;
  /** Upstream path of a single item, with one `:param` for its id, e.g. `/quote/:symbol`. */
  item: string;
  bulk: {
    method: 'GET' | 'POST';
    /** Upstream path; `{ids}` becomes the URL-encoded ids joined by `separator`. */
    path: string;
    separator: string;
    /** POST: the body is `{"<bodyField>": [ids]}`. */
    bodyField: string;
  };
  /** Dotted path to the items in the bulk JSON response: an array, or an object keyed by id. `""` = root. */
  items: string;
  /** Field holding each item's id when the items are an array. */
  key: string | undefined;
  /** How long a batch collects calls after its first, in ms. Default 2. */
  windowMs: number;
  /** Most distinct items per bulk call. */
  maxBatch: number;
  /** Largest bulk response read, in bytes. */
  maxResponseBytes: number;
}

interface ItemCall {
  id: string;
  call: Call;
}

/** Callers with different identities never share a bulk call (it carries the first caller's credentials). */
const MAX_GROUPS = 10_000;

/**
 * Collects single-item GETs whose path matches `item` for `windowMs` (or until `maxBatch` distinct ids)
 * and sends one bulk call. Each caller gets its own item as a 200 JSON reply; an item missing from the
 * bulk response is `404 GW_ITEM_NOT_FOUND` for that caller alone; a failed bulk call fails every caller
 * of the batch with the same error (or relays the bulk status and body when it was not a 2xx). Other
 * calls pass straight through. Batches are per principal.
 */
export function batch(options: BatchOptions): Policy {
  const match = compileItemPattern(options.item);
  const itemsPath = options.items === '' ? [] : options.items.split('.');

  return (next) => {
    const loaders = new LRUCache<string, DataLoader<ItemCall, Reply, ItemCall>>({ max: MAX_GROUPS });
    const loaderFor = (principal: string) => {
      let loader = loaders.get(principal);
      if (loader === undefined) {
        loader = new DataLoader<ItemCall, Reply, ItemCall>((batch) => sendBulk(next, batch), {
          cache: false,
          maxBatchSize: options.maxBatch,
          batchScheduleFn: (dispatch) => setTimeout(dispatch, options.windowMs),
        });
        loaders.set(principal, loader);
      }
      return loader;
    };

    return async (call) => {
      if (call.method !== 'GET') return next(call);
      const queryAt = call.path.indexOf('?');
      const id = match(queryAt === -1 ? call.path : call.path.slice(0, queryAt));
      if (id === undefined) return next(call);
      return untilAborted(loaderFor(call.principal ?? '').load({ id, call }), call.signal);
    };
  };

  /** One upstream call for the whole batch; resolves with one reply or error per caller, in order. */
  async function sendBulk(next: Handler, batch: readonly ItemCall[]): Promise<Array<Reply | Error>> {
    const ids = [...new Set(batch.map((b) => b.id))];
    publish(events.batch, { route: options.route, callers: batch.length, items: ids.length });
    const first = batch[0]!.call;
    // The bulk call belongs to no single caller: it is aborted only when every caller has gone.
    const controller = new AbortController();
    let waiting = batch.length;
    const onLeave = () => {
      if (--waiting === 0)
        controller.abort(new GatewayError('GW_CLIENT_CLOSED', 'every caller of the batch left'));
    };
    for (const { call } of batch) call.signal.addEventListener('abort', onLeave, { once: true });
    try {
      const reply = await next(bulkCall(first, ids, controller.signal));
      const buffered = await bufferReply(reply, options.maxResponseBytes);
      if (!buffered.complete) {
        discard(buffered.reply);
        const error = new GatewayError(
          'GW_UPSTREAM_RESPONSE_TOO_LARGE',
          `bulk response exceeds ${options.maxResponseBytes} bytes`,
        );
        return batch.map(() => error);
      }
      const body = buffered.reply.body ?? Buffer.alloc(0);
      if (reply.status < 200 || reply.status > 299) return batch.map(() => ({ ...reply, body }));
      const found = splitItems(body, ids);
      if (found instanceof Error) return batch.map(() => found);
      const headers = { 'content-type': 'application/json', ...pick(reply.headers, 'cache-control') };
      return batch.map(({ id }) => {
        const item = found.get(id);
        return item === undefined
          ? new GatewayError('GW_ITEM_NOT_FOUND', `the bulk response has no item "${id}"`, { data: { id } })
          : { status: 200, headers, body: item };
      });
    } catch (error) {
      return batch.map(() => (error instanceof Error ? error : new Error(String(error))));
    } finally {
      for (const { call } of batch) call.signal.removeEventListener('abort', onLeave);
    }
  }

  function bulkCall(first: Call, ids: string[], signal: AbortSignal): Call {
    const { method, path, separator, bodyField } = options.bulk;
    const joined = ids.map(encodeURIComponent).join(separator); // the separator is literal: APIs expect "A,B"
    const headers = { ...first.headers };
    delete headers['content-length'];
    delete headers['cache-control']; // a caller's no-cache is about its own item, not the bulk call
    headers['accept-encoding'] = 'identity'; // the gateway reads the bulk body itself
    if (method === 'GET') {
      return { ...first, method, path: path.replace('{ids}', joined), headers, body: undefined, signal };
    }
    const body = Buffer.from(JSON.stringify({ [bodyField]: ids }));
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(body.length);
    return { ...first, method, path, headers, body, idempotent: true, signal };
  }

  /** Each requested id's item, re-serialised; an Error when the body is not the JSON shape configured. */
  function splitItems(body: Buffer, ids: string[]): Map<string, Buffer> | Error {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return new GatewayError('GW_UPSTREAM_PROTOCOL', 'the bulk response is not JSON');
    }
    for (const segment of itemsPath) parsed = isObject(parsed) ? parsed[segment] : undefined;
    const out = new Map<string, Buffer>();
    const wanted = new Set(ids);
    if (Array.isArray(parsed) && options.key !== undefined) {
      for (const item of parsed) {
        const id = isObject(item) ? item[options.key] : undefined;
        const text = typeof id === 'number' ? String(id) : id;
        if (typeof text === 'string' && wanted.has(text)) out.set(text, Buffer.from(JSON.stringify(item)));
      }
      return out;
    }
    if (isObject(parsed) && !Array.isArray(parsed)) {
      for (const id of ids) {
        if (parsed[id] !== undefined) out.set(id, Buffer.from(JSON.stringify(parsed[id])));
      }
      return out;
    }
    return new GatewayError(
      'GW_UPSTREAM_PROTOCOL',
      `the bulk response has no ${options.key === undefined ? 'object' : 'array'} at "${options.items}"`,
    );
  }
}

/** Compiles `/quote/:symbol` into a matcher returning the decoded id, or undefined. */
export function compileItemPattern(pattern: string): (path: string) => string | undefined {
  const segments = pattern.split('/');
  const at = segments.findIndex((s) => s.startsWith(':'));
  return (path) => {
    const parts = path.split('/');
    if (parts.length !== segments.length) return undefined;
    for (let i = 0; i < parts.length; i++) if (i !== at && parts[i] !== segments[i]) return undefined;
    const raw = parts[at];
    if (raw === undefined || raw === '') return undefined;
    try {
      return decodeURIComponent(raw);
    } catch {
      return undefined;
    }
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object';
}

function pick(headers: Reply['headers'], name: string): Reply['headers'] {
  return headers[name] === undefined ? {} : { [name]: headers[name] };
}
