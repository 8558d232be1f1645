// Content codings on the way to the client: compress what is worth it, decode what the client cannot take, one place for every endpoint.
import { pipeline, Transform } from 'node:stream';
import type { Readable, TransformCallback } from 'node:stream';
import { bufferReply } from '../pipeline/buffer.js';
import { discard } from '../pipeline/compose.js';
import type { Headers, Reply } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';
import { negotiate, parseAcceptEncoding, qualityOf } from './accept-encoding.js';
import type { Accepted } from './accept-encoding.js';
import { codedEtag, clientTag } from './coded-etag.js';
import type { Produced } from './coded-etag.js';
import {
  codingOf,
  decodeBuffer,
  decodedTooLarge,
  decoderStream,
  encodeBuffer,
  encoderStream,
} from './codings.js';
import type { Coding, CodingLevels } from './codings.js';

/** What a route (or the built-in endpoints) compresses, fixed at start-up. */
export interface CompressionSettings extends CodingLevels {
  /** Codings offered, the gateway's preference first (ties in the client's q-values go to it). */
  codings: readonly Coding[];
  /** Bodies smaller than this (bytes) are sent as they are: the coding's framing would eat the gain. */
  minBytes: number;
  /**
   * Media types worth compressing: `type/subtype`, `type/*`, or a structured suffix `+json` / `+xml`.
   * Parameters (`; charset=utf-8`) are ignored.
   */
  types: readonly string[];
  /**
   * Compress `text/event-stream` and `application/x-ndjson` too, flushing every chunk at once so no event
   * waits for the next. Default false: a stream goes out as the upstream sent it.
   */
  streams: boolean;
}

export interface ReplyCoderOptions {
  /** Route label for events. */
  route: string;
  /** Undefined: the route never compresses (it still decodes what a client cannot take). */
  compression: CompressionSettings | undefined;
  /** Most bytes a decoded body may have (the upstream's `maxResponseBytes`): a decompression bomb is a 502. */
  maxDecodedBytes: number;
}

/** The request facts the coding of a reply depends on. */
export interface CodedRequest {
  readonly method: string;
  readonly headers: Headers;
  /** Metrics label, when the coder serves several (the built-in endpoints). Default: the coder's `route`. */
  readonly route?: string;
}

/** Codes a reply for one client; returns the reply itself when there is nothing to do. */
export type ReplyCoder = (reply: Reply, request: CodedRequest) => Reply | Promise<Reply>;

const STREAM_TYPES = new Set(['text/event-stream', 'application/x-ndjson']);
/** Representation metadata that describes the upstream's bytes, not the re-coded ones. */
const REPRESENTATION_HEADERS = [
  'content-length',
  'accept-ranges',
  'content-md5',
  'digest',
  'content-digest',
  'repr-digest',
];
/** Re-coded bodies kept per source body (a cached entry's bytes are re-coded once, not per hit), up to this size each. */
const MAX_MEMO_BYTES = 4 * 1024 ** 2;

/** A body re-coded once, and the size of its identity form (for the metrics' ratio). */
interface Recoded {
  body: Buffer;
  identityBytes: number;
}

/**
 * Builds the coder of one route. Per reply (RFC 9110 §8.4, §12.5.3):
 * - an upstream coding the client accepts goes through untouched (no CPU at all); one it does not is
 *   decoded, bounded by `maxDecodedBytes`: a body is decoded whole before its headers go out, so a bomb is
 *   a clean 502 `GW_UPSTREAM_RESPONSE_TOO_LARGE`; a stream (SSE, NDJSON) is decoded chunk by chunk and cut
 *   there;
 * - an identity body of a listed type, at least `minBytes` (or of unknown length), is compressed with the
 *   coding the client rates highest among `codings`; streams only with `streams`, flushed per chunk;
 * - `Cache-Control: no-transform` (RFC 9110 §7.7) is never re-coded; neither are 1xx, 204, 206;
 * - a re-coded reply gets its own entity tag (`"v1-br"`, RFC 9110 §8.8.3), loses `Content-Length` when
 *   streamed (set exactly otherwise), `Accept-Ranges` and digests, and every reply whose coding depended on
 *   the client's `Accept-Encoding` carries `Vary: Accept-Encoding`; a 304 names the tag the client sent.
 * Buffered bodies re-coded once are remembered with the source bytes, so a cached entry is compressed once
 * per coding, not per hit. A route without compression costs one property read per reply.
 */
export function replyCoder(options: ReplyCoderOptions): ReplyCoder {
  const { route, compression, maxDecodedBytes } = options;
  const typeMatches = compression === undefined ? () => false : mediaTypeMatcher(compression.types);
  // Without compression a reply is only ever decoded: these levels are never used then.
  const levels: CodingLevels = compression ?? { brotliQuality: 4, gzipLevel: 4 };
  const memo = new WeakMap<Buffer, Map<Produced, Recoded>>();
  const published = (
    label: string,
    from: Coding | 'identity',
    to: Produced,
    coded: Recoded,
    durationMs: number,
    remembered: boolean,
  ) =>
    publish(events.contentCoding, {
      route: label,
      from,
      to,
      identityBytes: coded.identityBytes,
      sentBytes: coded.body.length,
      durationMs,
      remembered,
    });

  const code = async (reply: Reply, request: CodedRequest): Promise<Reply> => {
    const { status, headers } = reply;
    if (status === 304) return notModified(reply, request.headers, compression !== undefined);
    if (status < 200 || status === 204 || status === 206 || noTransform(headers['cache-control'])) {
      return reply;
    }
    const have = headers['content-encoding'];
    const source: Coding | 'identity' | undefined =
      have === undefined ? 'identity' : typeof have === 'string' ? codingOf(have) : undefined;
    if (source === undefined) return reply; // stacked or unknown codings: relayed as they are
    const accepted = parseAcceptEncoding(request.headers['accept-encoding']);
    const type = mediaType(headers['content-type']);
    const streamed = STREAM_TYPES.has(type);
    const body = reply.body;
    const length = Buffer.isBuffer(body) ? body.length : lengthOf(headers['content-length']);
    const worthIt =
      compression !== undefined &&
      (!streamed || compression.streams) &&
      typeMatches(type) &&
      (length === undefined || length >= compression.minBytes);
    const target = chosen(source, accepted, worthIt ? compression.codings : undefined);
    const varies = source !== 'identity' || worthIt;
    if (target === source) return varies ? { ...reply, headers: withVary(headers) } : reply;

    const out = recodedHeaders(headers, target);
    if (body === null || request.method === 'HEAD') {
      if (body !== null) discard(reply);
      delete out['content-length'];
      return { status, headers: out, body: null };
    }
    if (Buffer.isBuffer(body)) return recodeBuffer(request.route ?? route, reply, body, source, target, out);
    if (source !== 'identity' && !streamed) {
      // Decoded whole before the headers go out, so a body that decodes too large is still a clean 502.
      const buffered = await bufferReply(reply, maxDecodedBytes);
      if (!buffered.complete) {
        discard(buffered.reply);
        throw decodedTooLarge(source, maxDecodedBytes);
      }
      return recodeBuffer(
        request.route ?? route,
        reply,
        buffered.reply.body ?? Buffer.alloc(0),
        source,
        target,
        out,
      );
    }
    delete out['content-length'];
    return {
      status,
      headers: out,
      body: recodeStream(request.route ?? route, body, source, target, streamed),
    };
  };

  const recodeBuffer = async (
    label: string,
    reply: Reply,
    body: Buffer,
    source: Coding | 'identity',
    target: Produced,
    headers: Headers,
  ): Promise<Reply> => {
    let known = memo.get(body);
    let coded = known?.get(target);
    if (coded === undefined) {
      const started = performance.now();
      const plain = source === 'identity' ? body : await decodeBuffer(source, body, maxDecodedBytes);
      const bytes = target === 'identity' ? plain : await encodeBuffer(target, plain, levels);
      coded = { body: bytes, identityBytes: plain.length };
      if (bytes.length <= MAX_MEMO_BYTES) {
        if (known === undefined) memo.set(body, (known = new Map<Produced, Recoded>()));
        known.set(target, coded);
      }
      published(label, source, target, coded, performance.now() - started, false);
    } else {
      published(label, source, target, coded, 0, true);
    }
    headers['content-length'] = String(coded.body.length);
    return { status: reply.status, headers, body: coded.body };
  };

  const recodeStream = (
    label: string,
    body: Readable,
    source: Coding | 'identity',
    target: Produced,
    streamed: boolean,
  ): Readable => {
    const stages: Array<NodeJS.ReadableStream | NodeJS.WritableStream> = [body];
    if (source !== 'identity') stages.push(decoderStream(source), new ByteLimit(source, maxDecodedBytes));
    const started = performance.now();
    const identity = new ByteCount();
    stages.push(identity);
    let sent: ByteCount | undefined;
    if (target !== 'identity') {
      stages.push(encoderStream(target, levels, streamed), (sent = new ByteCount()));
    }
    const last = stages[stages.length - 1] as Readable;
    // Errors on any stage destroy the last one, which the writer turns into a cut connection.
    pipeline(stages as [Readable, ...Transform[]], () => {});
    last.once('end', () => {
      publish(events.contentCoding, {
        route: label,
        from: source,
        to: target,
        identityBytes: identity.bytes,
        sentBytes: sent?.bytes ?? identity.bytes,
        durationMs: performance.now() - started,
        remembered: false,
      });
    });
    return last;
  };

  return (reply, request) => {
    if (
      compression === undefined &&
      reply.headers['content-encoding'] === undefined &&
      reply.status !== 304
    ) {
      return reply;
    }
    return code(reply, request);
  };
}

/**
 * The coding to send: the upstream's own when the client takes it (no work); else, for a body worth
 * compressing, the client's favourite among `offered`; else identity.
 */
function chosen(
  source: Coding | 'identity',
  accepted: Accepted,
  offered: readonly Coding[] | undefined,
): Produced {
  if (source !== 'identity' && qualityOf(accepted, source) > 0) return source;
  return (offered === undefined ? undefined : negotiate(accepted, offered)) ?? 'identity';
}

/** The reply's headers for a `target` representation: coding, entity tag, Vary; the upstream's framing dropped. */
function recodedHeaders(headers: Headers, target: Produced): Headers {
  const out = withVary(headers);
  for (const name of REPRESENTATION_HEADERS) delete out[name];
  if (target === 'identity') delete out['content-encoding'];
  else out['content-encoding'] = target;
  const etag = out.etag;
  if (typeof etag === 'string') {
    const tag = codedEtag(etag, target);
    if (tag === undefined) delete out.etag;
    else out.etag = tag;
  }
  return out;
}

/** A 304 for a re-coded representation names the tag the client holds (and varies as its 200 would). */
function notModified(reply: Reply, request: Headers, compressing: boolean): Reply {
  const etag = reply.headers.etag;
  const tag = typeof etag === 'string' ? clientTag(etag, request) : etag;
  if (tag === etag && !compressing) return reply;
  const headers = compressing ? withVary(reply.headers) : { ...reply.headers };
  headers.etag = tag;
  return { ...reply, headers };
}

/** A copy of `headers` whose `Vary` names Accept-Encoding (unless it is `*` or already does). */
function withVary(headers: Headers): Headers {
  const out = { ...headers };
  const vary = out.vary;
  const text = Array.isArray(vary) ? vary.join(', ') : vary;
  if (text === undefined || text.trim() === '') out.vary = 'Accept-Encoding';
  else if (!/(^|,)\s*(\*|accept-encoding)\s*(,|$)/i.test(text)) out.vary = `${text}, Accept-Encoding`;
  return out;
}

function noTransform(cacheControl: string | string[] | undefined): boolean {
  if (cacheControl === undefined) return false;
  const text = Array.isArray(cacheControl) ? cacheControl.join(',') : cacheControl;
  return /(^|,)\s*no-transform\s*(,|$)/i.test(text);
}

/** `type/subtype`, lower case, without parameters; `''` when absent. */
function mediaType(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return '';
  const semicolon = text.indexOf(';');
  return (semicolon === -1 ? text : text.slice(0, semicolon)).trim().toLowerCase();
}

function lengthOf(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

/** A matcher for `types` (see {@link CompressionSettings.types}), compiled once. */
export function mediaTypeMatcher(types: readonly string[]): (type: string) => boolean {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  for (const raw of types) {
    const t = raw.trim().toLowerCase();
    if (t.startsWith('+')) suffixes.push(t);
    else if (t.endsWith('/*')) prefixes.push(t.slice(0, -1));
    else exact.add(t);
  }
  return (type) =>
    type !== '' &&
    (exact.has(type) || prefixes.some((p) => type.startsWith(p)) || suffixes.some((s) => type.endsWith(s)));
}

/** Counts the bytes passing through (for the coding metrics). */
class ByteCount extends Transform {
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/** Fails the stream once more than `limit` decoded bytes passed: a decompression bomb on a stream is cut. */
class ByteLimit extends Transform {
  private seen = 0;

  constructor(
    private readonly coding: Coding,
    private readonly limit: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) callback(decodedTooLarge(this.coding, this.limit));
    else callback(null, chunk);
  }
}
