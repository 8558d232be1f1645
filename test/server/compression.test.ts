import { Readable } from 'node:stream';
import { brotliDecompressSync, createGunzip, gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import type { Reply } from '../../src/pipeline/types.js';
import { negotiate, parseAcceptEncoding } from '../../src/server/accept-encoding.js';
import { clientTag, codedEtag, withUpstreamTags } from '../../src/server/coded-etag.js';
import { AVAILABLE_CODINGS, ZSTD_AVAILABLE } from '../../src/server/codings.js';
import { replyCoder } from '../../src/server/compression.js';
import type { CompressionSettings } from '../../src/server/compression.js';
import { events } from '../../src/telemetry/events.js';
import type { ContentCodingEvent } from '../../src/telemetry/events.js';

const SETTINGS: CompressionSettings = {
  codings: ['br', 'gzip'],
  minBytes: 1024,
  types: ['application/json', '+json', 'text/*'],
  streams: false,
  brotliQuality: 4,
  gzipLevel: 6,
};
const JSON_BODY = Buffer.from(
  JSON.stringify({ items: Array.from({ length: 500 }, (_, i) => ({ i, name: `item ${i}` })) }),
);
const json = (body: Buffer | Readable | null = JSON_BODY, extra: Reply['headers'] = {}): Reply => ({
  status: 200,
  headers: {
    'content-type': 'application/json; charset=utf-8',
    ...(Buffer.isBuffer(body) ? { 'content-length': String(body.length) } : {}),
    etag: '"v1"',
    ...extra,
  },
  body,
});
const get = (acceptEncoding?: string, extra: Record<string, string> = {}) => ({
  method: 'GET',
  headers: { ...(acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding }), ...extra },
});
const coder = (settings: CompressionSettings | 'off' = SETTINGS, maxDecodedBytes = 1024 ** 2, route = 'r') =>
  replyCoder({ route, compression: settings === 'off' ? undefined : settings, maxDecodedBytes });

async function read(body: Reply['body']): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function recorded(): { events: ContentCodingEvent[]; stop(): void } {
  const seen: ContentCodingEvent[] = [];
  const listener = (message: unknown) => seen.push(message as ContentCodingEvent);
  events.contentCoding.subscribe(listener);
  return { events: seen, stop: () => events.contentCoding.unsubscribe(listener) };
}

describe('Accept-Encoding negotiation (RFC 9110 §12.5.3)', () => {
  it('picks the coding the client rates highest, ties going to the gateway order', () => {
    expect(negotiate(parseAcceptEncoding('gzip, br'), ['br', 'gzip'])).toBe('br');
    expect(negotiate(parseAcceptEncoding('gzip;q=1, br;q=0.5'), ['br', 'gzip'])).toBe('gzip');
    expect(negotiate(parseAcceptEncoding('x-gzip'), ['br', 'gzip'])).toBe('gzip');
    expect(negotiate(parseAcceptEncoding('*'), ['br', 'gzip'])).toBe('br');
    expect(negotiate(parseAcceptEncoding('*;q=0.5, br;q=0'), ['br', 'gzip'])).toBe('gzip');
  });

  it('accepts no coding when the field is absent, empty, all q=0 or malformed', () => {
    expect(negotiate(parseAcceptEncoding(undefined), ['br', 'gzip'])).toBeUndefined();
    expect(negotiate(parseAcceptEncoding(''), ['br', 'gzip'])).toBeUndefined();
    expect(negotiate(parseAcceptEncoding('gzip;q=0, br;q=0'), ['br', 'gzip'])).toBeUndefined();
    expect(negotiate(parseAcceptEncoding('gzip;q=high'), ['br', 'gzip'])).toBeUndefined();
    expect(negotiate(parseAcceptEncoding('identity'), ['br', 'gzip'])).toBeUndefined();
  });

  it('offers zstd only on a runtime that has it', () => {
    expect(AVAILABLE_CODINGS.includes('zstd')).toBe(ZSTD_AVAILABLE);
    expect(negotiate(parseAcceptEncoding('zstd'), AVAILABLE_CODINGS)).toBe(
      ZSTD_AVAILABLE ? 'zstd' : undefined,
    );
  });
});

describe('entity tags of re-coded representations (RFC 9110 §8.8.3)', () => {
  it('appends the coding to the opaque tag and keeps weakness; drops a malformed tag', () => {
    expect(codedEtag('"v1"', 'gzip')).toBe('"v1-gzip"');
    expect(codedEtag('W/"v1"', 'br')).toBe('W/"v1-br"');
    expect(codedEtag('"v1"', 'identity')).toBe('"v1-identity"');
    expect(codedEtag('v1', 'gzip')).toBeUndefined();
  });

  it('adds the upstream tag beside each re-coded one in a conditional, and maps a 304 back', () => {
    expect(withUpstreamTags('"v1-gzip", W/"v2-br", "v3"')).toBe('"v1-gzip", W/"v2-br", "v3", "v1", W/"v2"');
    expect(withUpstreamTags('"plain"')).toBe('"plain"');
    expect(clientTag('"v1"', { 'if-none-match': '"v1-br", "v1"' })).toBe('"v1-br"');
    expect(clientTag('"v9"', { 'if-none-match': '"v1-br"' })).toBe('"v9"');
  });
});

describe('replyCoder', () => {
  it('compresses a large JSON body with the best accepted coding, with its length, Vary and its own ETag', async () => {
    const out = await coder()(json(), get('gzip, deflate, br'));
    expect(out.headers['content-encoding']).toBe('br');
    expect(out.headers.vary).toBe('Accept-Encoding');
    expect(out.headers.etag).toBe('"v1-br"');
    const body = await read(out.body);
    expect(out.headers['content-length']).toBe(String(body.length));
    expect(body.length).toBeLessThan(JSON_BODY.length / 4);
    expect(brotliDecompressSync(body).equals(JSON_BODY)).toBe(true);

    const gzip = await coder()(json(), get('gzip'));
    expect(gzip.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(await read(gzip.body)).equals(JSON_BODY)).toBe(true);
  });

  it('sends identity with Vary to a client that accepts no coding', async () => {
    const out = await coder()(json(), get());
    expect(out.headers['content-encoding']).toBeUndefined();
    expect(out.headers.vary).toBe('Accept-Encoding');
    expect(out.headers.etag).toBe('"v1"');
    expect(out.body).toBe(JSON_BODY);
  });

  it('leaves small bodies, unlisted types, no-transform, 206 and SSE (without streams) alone', async () => {
    const small = Buffer.from('{"a":1}');
    expect((await coder()(json(small), get('br'))).headers['content-encoding']).toBeUndefined();
    const png = json(JSON_BODY, { 'content-type': 'image/png' });
    expect((await coder()(png, get('br'))).headers['content-encoding']).toBeUndefined();
    const fixed = json(JSON_BODY, { 'cache-control': 'public, no-transform' });
    expect(await coder()(fixed, get('br'))).toBe(fixed);
    const partial = { ...json(), status: 206 };
    expect(await coder()(partial, get('br'))).toBe(partial);
    const sse = json(Readable.from([Buffer.from('data: 1\n\n')]), { 'content-type': 'text/event-stream' });
    expect((await coder()(sse, get('br'))).headers['content-encoding']).toBeUndefined();
  });

  it('costs nothing on a route without compression when the upstream sent identity', () => {
    const reply = json();
    expect(coder('off')(reply, get('br'))).toBe(reply);
  });

  it('relays an upstream coding the client accepts untouched, and decodes it for one that does not', async () => {
    const gz = gzipSync(JSON_BODY);
    const upstream = json(gz, { 'content-encoding': 'gzip' });
    const passed = await coder('off')(upstream, get('gzip'));
    expect(passed.body).toBe(gz);
    expect(passed.headers.etag).toBe('"v1"');
    expect(passed.headers.vary).toBe('Accept-Encoding');

    const decoded = await coder('off')(upstream, get());
    expect(decoded.headers['content-encoding']).toBeUndefined();
    expect(decoded.headers.etag).toBe('"v1-identity"');
    expect((await read(decoded.body)).equals(JSON_BODY)).toBe(true);
    expect(decoded.headers['content-length']).toBe(String(JSON_BODY.length));
  });

  it('decodes a streamed body whole before answering, so a decompression bomb is GW_UPSTREAM_RESPONSE_TOO_LARGE', async () => {
    const bomb = gzipSync(Buffer.alloc(8 * 1024 ** 2));
    const upstream = json(Readable.from([bomb]), {
      'content-encoding': 'gzip',
      'content-length': String(bomb.length),
    });
    const failure = await Promise.resolve(coder('off', 1024 ** 2)(upstream, get())).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(GatewayError);
    expect((failure as GatewayError).code).toBe('GW_UPSTREAM_RESPONSE_TOO_LARGE');
    expect((failure as GatewayError).status).toBe(502);
  });

  it('compresses a streamed body of unknown length without Content-Length', async () => {
    const chunks = [JSON_BODY.subarray(0, 5000), JSON_BODY.subarray(5000)];
    const out = await coder()(json(Readable.from(chunks)), get('gzip'));
    expect(out.headers['content-encoding']).toBe('gzip');
    expect(out.headers['content-length']).toBeUndefined();
    expect(gunzipSync(await read(out.body)).equals(JSON_BODY)).toBe(true);
  });

  it('flushes every chunk of an SSE stream when the route compresses streams, so no event waits', async () => {
    const source = new Readable({ read() {} });
    const sse = json(source, { 'content-type': 'text/event-stream' });
    const out = await coder({ ...SETTINGS, streams: true })(sse, get('gzip'));
    expect(out.headers['content-encoding']).toBe('gzip');
    const gunzip = createGunzip();
    (out.body as Readable).pipe(gunzip);
    const text: string[] = [];
    gunzip.on('data', (chunk: Buffer) => text.push(chunk.toString()));
    source.push('event: a\ndata: 1\n\n');
    // The first event decodes while the stream is still open: it was not held for more input.
    await expect.poll(() => text.join('')).toBe('event: a\ndata: 1\n\n');
    source.push('data: 2\n\n');
    await expect.poll(() => text.join('')).toBe('event: a\ndata: 1\n\ndata: 2\n\n');
    source.push(null);
  });

  it('compresses a buffered body once per coding and remembers it for the next reply with the same bytes', async () => {
    const seen = recorded();
    try {
      const encode = coder(SETTINGS, 1024 ** 2, 'memo');
      const first = await encode(json(), get('br'));
      const second = await encode(json(), get('br'));
      expect(second.body).toBe(first.body);
      const mine = seen.events.filter((e) => e.route === 'memo');
      expect(mine.map((e) => e.remembered)).toEqual([false, true]);
      expect(mine[0]).toMatchObject({
        route: 'memo',
        from: 'identity',
        to: 'br',
        identityBytes: JSON_BODY.length,
      });
      expect(mine[0]!.sentBytes).toBe((first.body as Buffer).length);
    } finally {
      seen.stop();
    }
  });

  it('answers HEAD with the coded headers and no body', async () => {
    const out = await coder()(
      { ...json(), body: null },
      { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } },
    );
    expect(out.headers['content-encoding']).toBe('gzip');
    expect(out.headers['content-length']).toBeUndefined();
    expect(out.body).toBeNull();
  });

  it('names the client own re-coded tag in a 304', async () => {
    const notModified: Reply = { status: 304, headers: { etag: '"v1"' }, body: null };
    const out = await coder()(notModified, get('br', { 'if-none-match': '"v1-br", "v1"' }));
    expect(out.headers.etag).toBe('"v1-br"');
    expect(out.headers.vary).toBe('Accept-Encoding');
  });
});
