// Compression end to end: a gateway process between real HTTP servers and a client that reads raw bytes.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliDecompressSync, constants, createGunzip, createGzip, gunzipSync, gzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnGateway, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';

/** A large JSON document like seed 002's traces with spans (about 300 KB). */
const TRACES = Buffer.from(
  JSON.stringify({
    traces: Array.from({ length: 30 }, (_, i) => ({
      trace_id: `tr-${i}`,
      spans: Array.from({ length: 20 }, (_, j) => ({
        name: `llm.call.${j}`,
        attributes: { model: 'emulated', prompt: `summarise document ${i}-${j} `.repeat(20) },
      })),
    })),
  }),
);
const BOMB = gzipSync(Buffer.alloc(64 * 1024 ** 2)); // 64 MiB of zeros in ~64 KiB

interface Upstream {
  url: string;
  server: Server;
  hits: Map<string, number>;
  /** Resolves the hold of the SSE stream with the given id. */
  release(id: string): void;
  /** Why each SSE stream's hold ended: `client` (the test saw event 1) or `timeout`. */
  heldUntil: Map<string, 'client' | 'timeout'>;
}

async function startUpstream(): Promise<Upstream> {
  const hits = new Map<string, number>();
  const holds = new Map<string, () => void>();
  const heldUntil = new Map<string, 'client' | 'timeout'>();
  const hold = (id: string) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        heldUntil.set(id, 'timeout');
        resolve();
      }, 10_000);
      holds.set(id, () => {
        clearTimeout(timer);
        heldUntil.set(id, 'client');
        resolve();
      });
    });
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://upstream');
    hits.set(url.pathname, (hits.get(url.pathname) ?? 0) + 1);
    const id = url.searchParams.get('id') ?? '';
    const gzipAsked = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    if (url.pathname === '/traces') {
      res.writeHead(200, {
        'content-type': 'application/json',
        etag: '"t1"',
        'content-length': TRACES.length,
      });
      res.end(TRACES);
    } else if (url.pathname === '/traces-gzip') {
      const body = gzipSync(TRACES);
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        vary: 'Accept-Encoding',
        etag: '"g1"',
        'content-length': body.length,
      });
      res.end(body);
    } else if (url.pathname === '/bomb') {
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'content-length': BOMB.length,
      });
      res.end(BOMB);
    } else if (url.pathname.startsWith('/events')) {
      // Event 1, then nothing until the test has seen event 1 through the gateway (or 10 s pass).
      const coded = url.pathname === '/events-gzip' && gzipAsked;
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        ...(coded ? { 'content-encoding': 'gzip' } : {}),
      });
      const out = coded ? createGzip({ flush: constants.Z_SYNC_FLUSH }) : undefined;
      out?.pipe(res);
      const write = (text: string) => (out ?? res).write(text);
      write('event: first\ndata: 1\n\n');
      await hold(id);
      write('event: last\ndata: 2\n\n');
      (out ?? res).end();
    } else {
      res.writeHead(404).end();
    }
  };
  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    hits,
    heldUntil,
    release: (id) => holds.get(id)?.(),
  };
}

let upstream: Upstream;
let gateway: CliProcess;

beforeAll(async () => {
  upstream = await startUpstream();
  gateway = await spawnGateway(`
upstreams:
  up: { url: "${upstream.url}", maxResponseBytes: 1mb }
routes:
  - name: traces
    match: { prefix: /traces }
    upstream: up
    cache: { ttl: 1m, scope: shared }
    compression: true
  - name: traces-gzip
    match: { prefix: /traces-gzip }
    upstream: up
    cache: { ttl: 1m, scope: shared }
  - name: events-gzip
    match: { prefix: /events-gzip }
    upstream: up
  - name: bomb
    match: { prefix: /bomb }
    upstream: up
  - name: events
    match: { prefix: /events }
    upstream: up
    compression: true
  - name: events-compressed
    match: { prefix: /compressed-events }
    upstream: up
    rewrite: /events
    compression: { streams: true }
`);
});
afterAll(async () => {
  await stopAll();
  await new Promise((resolve) => upstream?.server.close(resolve));
});

async function get(path: string, acceptEncoding?: string) {
  const response = await request(`${gateway.url}${path}`, {
    headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding },
  });
  const body = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, headers: response.headers, body };
}

describe('compression through a gateway process', () => {
  it('serves one cached large JSON entry as br, gzip or identity, each to the client that takes it', async () => {
    const br = await get('/traces', 'gzip, deflate, br');
    const gzip = await get('/traces', 'gzip');
    const plain = await get('/traces');
    expect(br.headers['content-encoding']).toBe('br');
    expect(brotliDecompressSync(br.body).equals(TRACES)).toBe(true);
    expect(gzip.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gzip.body).equals(TRACES)).toBe(true);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.equals(TRACES)).toBe(true);
    // One upstream call and one cache entry: the second and third replies are hits.
    expect(upstream.hits.get('/traces')).toBe(1);
    expect([br, gzip, plain].map((r) => r.headers['x-slipstream-cache'])).toEqual(['miss', 'hit', 'hit']);
    for (const r of [br, gzip, plain]) {
      expect(r.headers.vary).toMatch(/accept-encoding/i);
      expect(Number(r.headers['content-length'])).toBe(r.body.length);
    }
    expect([br.headers.etag, gzip.headers.etag, plain.headers.etag]).toEqual([
      '"t1-br"',
      '"t1-gzip"',
      '"t1"',
    ]);
    expect(br.body.length).toBeLessThan(TRACES.length / 5);
  });

  it('answers a conditional GET for the compressed representation with 304 and its own tag', async () => {
    const response = await request(`${gateway.url}/traces`, {
      headers: { 'accept-encoding': 'br', 'if-none-match': '"t1-br"' },
    });
    await response.body.dump();
    expect(response.statusCode).toBe(304);
    expect(response.headers.etag).toBe('"t1-br"');
  });

  it('asks the upstream for gzip, relays it to a gzip client untouched and decodes it for an identity client', async () => {
    const gzip = await get('/traces-gzip', 'gzip');
    const plain = await get('/traces-gzip');
    expect(gzip.headers['content-encoding']).toBe('gzip');
    expect(gzip.headers.etag).toBe('"g1"');
    expect(gunzipSync(gzip.body).equals(TRACES)).toBe(true);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers.etag).toBe('"g1-identity"');
    expect(plain.body.equals(TRACES)).toBe(true);
    expect(upstream.hits.get('/traces-gzip')).toBe(1); // the gateway asked gzip for both: one variant
  });

  it('turns a zip bomb into a clean 502 GW_UPSTREAM_RESPONSE_TOO_LARGE, and keeps serving', async () => {
    const bomb = await get('/bomb');
    expect(bomb.status).toBe(502);
    expect(JSON.parse(bomb.body.toString()).error.code).toBe('GW_UPSTREAM_RESPONSE_TOO_LARGE');
    // A client that takes gzip gets the compressed bytes, which fit the limit: its own to decode.
    const relayed = await get('/bomb', 'gzip');
    expect([relayed.status, relayed.body.length]).toEqual([200, BOMB.length]);
    expect((await get('/traces', 'gzip')).status).toBe(200);
  });
});

describe('server-sent events and compression', () => {
  /** Reads the stream until `expected` appears in its (decoded) text; resolves with the whole text. */
  async function readUntilEnd(path: string, id: string, acceptEncoding: string, decode: boolean) {
    const response = await request(`${gateway.url}${path}?id=${id}`, {
      headers: { 'accept-encoding': acceptEncoding },
    });
    const decoded = decode ? response.body.pipe(createGunzip()) : response.body;
    let text = '';
    for await (const chunk of decoded) {
      text += (chunk as Buffer).toString();
      // Event 1 arrived while the upstream is holding event 2 back: nothing buffered it.
      if (text.includes('data: 1\n\n')) upstream.release(id);
    }
    return { headers: response.headers, text };
  }

  it('never buffers an SSE stream on a compressing route (it goes out as identity)', async () => {
    const { headers, text } = await readUntilEnd('/events', 'sse-1', 'gzip, br', false);
    expect(headers['content-encoding']).toBeUndefined();
    expect(text).toBe('event: first\ndata: 1\n\nevent: last\ndata: 2\n\n');
    expect(upstream.heldUntil.get('sse-1')).toBe('client');
  });

  it('compresses an SSE stream only when the route asks, flushing each event as it comes', async () => {
    const { headers, text } = await readUntilEnd('/compressed-events', 'sse-2', 'gzip', true);
    expect(headers['content-encoding']).toBe('gzip');
    expect(text).toBe('event: first\ndata: 1\n\nevent: last\ndata: 2\n\n');
    expect(upstream.heldUntil.get('sse-2')).toBe('client');
  });

  it('decodes a gzip SSE stream from the upstream for an identity client event by event', async () => {
    const { headers, text } = await readUntilEnd('/events-gzip', 'sse-3', 'identity', false);
    expect(headers['content-encoding']).toBeUndefined();
    expect(text).toBe('event: first\ndata: 1\n\nevent: last\ndata: 2\n\n');
    expect(upstream.heldUntil.get('sse-3')).toBe('client');
  });
});
