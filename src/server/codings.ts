// Content codings the gateway can apply and remove (RFC 9110 §8.4.1): gzip, deflate, br, and zstd where the runtime has it.
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import { GatewayError } from '../errors.js';

/** A content coding the gateway produces or decodes. */
export type Coding = 'zstd' | 'br' | 'gzip' | 'deflate';

/** How hard the encoders work: brotli quality 0-11, gzip level 1-9. */
export interface CodingLevels {
  brotliQuality: number;
  gzipLevel: number;
}

type ZlibCall = (
  buffer: Buffer,
  options: object,
  callback: (error: Error | null, out: Buffer) => void,
) => void;
type ZlibStream = (options: object) => Transform;

/**
 * zstd arrived in Node 22.15 / 23.8 (`zlib.zstdCompress`); Node 20 has none. Read through a plain record so
 * the build works with either runtime's types, and only offered where it exists.
 */
const zstd = zlib as unknown as Record<string, ZlibCall | ZlibStream | undefined>;
/** Whether this runtime can encode and decode zstd (RFC 8878). */
export const ZSTD_AVAILABLE =
  typeof zstd.zstdCompress === 'function' && typeof zstd.createZstdDecompress === 'function';

/** The codings this runtime supports, in the gateway's default order of preference. */
export const AVAILABLE_CODINGS: readonly Coding[] = ZSTD_AVAILABLE
  ? ['zstd', 'br', 'gzip', 'deflate']
  : ['br', 'gzip', 'deflate'];

/**
 * A coding token as it appears in `Content-Encoding` / `Accept-Encoding`, normalised: lower case, and
 * `x-gzip` is gzip (RFC 9110 §8.4.1.3). Undefined for codings the gateway does not know.
 */
export function codingOf(token: string): Coding | undefined {
  const t = token.trim().toLowerCase();
  if (t === 'gzip' || t === 'x-gzip') return 'gzip';
  if (t === 'br' || t === 'deflate') return t;
  if (t === 'zstd' && ZSTD_AVAILABLE) return 'zstd';
  return undefined;
}

const gzip = promisify(zlib.gzip) as unknown as (b: Buffer, o: object) => Promise<Buffer>;
const gunzip = promisify(zlib.gunzip) as unknown as (b: Buffer, o: object) => Promise<Buffer>;
const deflate = promisify(zlib.deflate) as unknown as (b: Buffer, o: object) => Promise<Buffer>;
const inflate = promisify(zlib.inflate) as unknown as (b: Buffer, o: object) => Promise<Buffer>;
const brotli = promisify(zlib.brotliCompress) as unknown as (b: Buffer, o: object) => Promise<Buffer>;
const unbrotli = promisify(zlib.brotliDecompress) as unknown as (b: Buffer, o: object) => Promise<Buffer>;
const call = (name: string) => (b: Buffer, o: object) =>
  new Promise<Buffer>((resolve, reject) =>
    (zstd[name] as ZlibCall)(b, o, (error, out) => (error === null ? resolve(out) : reject(error))),
  );

/**
 * Encodes `body` on the libuv thread pool (the event loop keeps serving). Brotli is told the size, which
 * lets it size its window for small bodies.
 */
export function encodeBuffer(coding: Coding, body: Buffer, levels: CodingLevels): Promise<Buffer> {
  switch (coding) {
    case 'br':
      return brotli(body, { params: brotliParams(levels, body.length) });
    case 'gzip':
      return gzip(body, { level: levels.gzipLevel });
    case 'deflate':
      return deflate(body, { level: levels.gzipLevel });
    case 'zstd':
      return call('zstdCompress')(body, {});
  }
}

/**
 * Decodes `body`, producing at most `maxBytes`: a larger output (a decompression bomb) fails with
 * `GW_UPSTREAM_RESPONSE_TOO_LARGE` before more than `maxBytes` is ever held; a corrupt body with
 * `GW_UPSTREAM_PROTOCOL`.
 */
export async function decodeBuffer(coding: Coding, body: Buffer, maxBytes: number): Promise<Buffer> {
  const options = { maxOutputLength: Math.max(1, maxBytes) };
  try {
    switch (coding) {
      case 'br':
        return await unbrotli(body, options);
      case 'gzip':
        return await gunzip(body, options);
      case 'deflate':
        return await inflate(body, options);
      case 'zstd':
        return await call('zstdDecompress')(body, options);
    }
  } catch (error) {
    throw decodeError(error, coding, maxBytes);
  }
}

/**
 * A streaming encoder. With `flushEachChunk`, every chunk written is flushed at once (Z_SYNC_FLUSH /
 * BROTLI_OPERATION_FLUSH), so a server-sent event is never held back waiting for more input.
 */
export function encoderStream(coding: Coding, levels: CodingLevels, flushEachChunk: boolean): Transform {
  switch (coding) {
    case 'br':
      return zlib.createBrotliCompress({
        params: brotliParams(levels, 0),
        ...(flushEachChunk ? { flush: zlib.constants.BROTLI_OPERATION_FLUSH } : {}),
      });
    case 'gzip':
      return zlib.createGzip({
        level: levels.gzipLevel,
        ...(flushEachChunk ? { flush: zlib.constants.Z_SYNC_FLUSH } : {}),
      });
    case 'deflate':
      return zlib.createDeflate({
        level: levels.gzipLevel,
        ...(flushEachChunk ? { flush: zlib.constants.Z_SYNC_FLUSH } : {}),
      });
    case 'zstd':
      return (zstd.createZstdCompress as ZlibStream)(
        flushEachChunk ? { flush: (zlib.constants as unknown as Record<string, number>).ZSTD_e_flush } : {},
      );
  }
}

/** A streaming decoder; it emits what each chunk decodes to at once, so a decoded event stream is not held back. */
export function decoderStream(coding: Coding): Transform {
  switch (coding) {
    case 'br':
      return zlib.createBrotliDecompress({ flush: zlib.constants.BROTLI_OPERATION_FLUSH });
    case 'gzip':
      return zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH });
    case 'deflate':
      return zlib.createInflate({ flush: zlib.constants.Z_SYNC_FLUSH });
    case 'zstd':
      return (zstd.createZstdDecompress as ZlibStream)({});
  }
}

/** `GW_UPSTREAM_RESPONSE_TOO_LARGE` for a decoded body past `maxBytes`; the error a bounded decoder fails with. */
export function decodedTooLarge(coding: Coding, maxBytes: number, cause?: unknown): GatewayError {
  return new GatewayError(
    'GW_UPSTREAM_RESPONSE_TOO_LARGE',
    `the upstream's ${coding} body decodes to more than ${maxBytes} bytes`,
    { cause },
  );
}

function brotliParams(levels: CodingLevels, sizeHint: number): Record<number, number> {
  const params: Record<number, number> = {
    [zlib.constants.BROTLI_PARAM_QUALITY]: levels.brotliQuality,
    [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
  };
  if (sizeHint > 0) params[zlib.constants.BROTLI_PARAM_SIZE_HINT] = sizeHint;
  return params;
}

function decodeError(error: unknown, coding: Coding, maxBytes: number): GatewayError {
  if (error instanceof GatewayError) return error;
  // zlib reports an output past maxOutputLength as a RangeError (ERR_BUFFER_TOO_LARGE).
  if (error instanceof RangeError) return decodedTooLarge(coding, maxBytes, error);
  return new GatewayError('GW_UPSTREAM_PROTOCOL', `the upstream's ${coding} body does not decode`, {
    cause: error,
  });
}
