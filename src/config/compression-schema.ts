// The compression config (zod): gateway-wide defaults, each route's on/off and overrides, and what upstreams are asked for.
import zlib from 'node:zlib';
import { z } from 'zod';
import { size } from './fields.js';

/** Node 22.15+ has zstd (`zlib.zstdCompress`); Node 20 does not (the same check as `server/codings.ts`). */
const ZSTD = typeof (zlib as unknown as Record<string, unknown>).zstdCompress === 'function';

const coding = z.enum(['zstd', 'br', 'gzip', 'deflate']).refine((c) => c !== 'zstd' || ZSTD, {
  message: `zstd needs Node 22.15 or later (this is ${process.version}); use br or gzip`,
});

/** Media types that are compressed already: listing one is a mistake (it only costs CPU). */
const COMPRESSED =
  /^(image\/(?!svg)|video\/|audio\/|font\/woff|application\/(zip|gzip|x-gzip|zstd|x-bzip2|x-7z-compressed|x-rar|x-xz|wasm))/;

const mediaType = z
  .string()
  .transform((t) => t.trim().toLowerCase())
  .refine((t) => /^(\+[a-z0-9.-]+|[a-z0-9.+-]+\/(\*|[a-z0-9.+-]+))$/.test(t), {
    message: 'expected a media type like "application/json", "text/*" or a suffix like "+json"',
  })
  .refine((t) => !COMPRESSED.test(t), { message: 'this media type is compressed already' });

/** Compressed by default: JSON and text, the bodies that shrink 5-20x. */
export const DEFAULT_COMPRESSED_TYPES = [
  'application/json',
  '+json',
  'text/*',
  'application/x-ndjson',
  'application/javascript',
  'application/xml',
  '+xml',
];

const fields = {
  /** Codings offered, in the gateway's order of preference. Default zstd (where available), br, gzip. */
  codings: z.array(coding).min(1),
  /** Smaller bodies go out as they are. */
  minBytes: size,
  /** Media types compressed (`type/subtype`, `type/*`, `+json`); compressed formats are refused. */
  types: z.array(mediaType).min(1),
  /** Also compress SSE and NDJSON streams, flushing every chunk so no event waits. */
  streams: z.boolean(),
  /** Brotli quality 0-11 (4: fast, close to gzip's speed with a better ratio; 11 is for static files). */
  brotliQuality: z.number().int().min(0).max(11),
  /**
   * gzip / deflate level 1-9. 4: on seed 002's span JSON, 3x less CPU than zlib's default 6 for about 15%
   * more bytes (bench/RESULTS.md).
   */
  gzipLevel: z.number().int().min(1).max(9),
};

/** `compression:` at the top level: the defaults every route's `compression: true` uses. */
export const compressionSchema = z
  .strictObject({
    codings: fields.codings.default(ZSTD ? ['zstd', 'br', 'gzip'] : ['br', 'gzip']),
    minBytes: fields.minBytes.default(1024),
    types: fields.types.default(DEFAULT_COMPRESSED_TYPES),
    streams: fields.streams.default(false),
    brotliQuality: fields.brotliQuality.default(4),
    gzipLevel: fields.gzipLevel.default(4),
    /** Compress the built-in JSON endpoints' replies too (/tools, fan-out JSON, /jobs results). */
    endpoints: z.boolean().default(false),
  })
  .prefault({});

/** A route's `compression`: off (the default), on with the top-level settings, or on with some overridden. */
export const routeCompressionSchema = z
  .union([
    z.boolean(),
    z.strictObject({
      codings: fields.codings.optional(),
      minBytes: fields.minBytes.optional(),
      types: fields.types.optional(),
      streams: fields.streams.optional(),
      brotliQuality: fields.brotliQuality.optional(),
      gzipLevel: fields.gzipLevel.optional(),
    }),
  ])
  .default(false);

/** What an upstream is asked for when its config says nothing (see {@link upstreamAcceptEncoding}). */
export const DEFAULT_UPSTREAM_ACCEPT_ENCODING = 'gzip, br';

/**
 * An upstream's `acceptEncoding`: the Accept-Encoding the gateway sends it instead of the client's
 * (absent: {@link DEFAULT_UPSTREAM_ACCEPT_ENCODING}, so the upstream leg carries fewer bytes and the
 * gateway decodes for clients that cannot take it), `identity` to ask for no coding, or `false` to forward
 * the client's own header. Optional rather than defaulted, so configs built in code need not name it.
 */
export const upstreamAcceptEncoding = z.union([z.literal(false), z.string().min(1)]).optional();

export type CompressionConfig = z.output<typeof compressionSchema>;
export type RouteCompressionConfig = z.output<typeof routeCompressionSchema>;
