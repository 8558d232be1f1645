// Field types every part of the config schema shares: durations, sizes, names, URLs, header maps.
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDurationMs, parseSizeBytes } from './units.js';

/** A duration in config (`"250ms"`, `"5s"`, or a number of ms), parsed to milliseconds. */
export const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDurationMs(value);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration like "250ms" or "5s"' });
    return z.NEVER;
  }
  return ms;
});

/** A size in config (`"64kb"`, `"1mb"`, or a number of bytes), parsed to bytes. */
export const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSizeBytes(value);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a size like "64kb" or "1mb"' });
    return z.NEVER;
  }
  return bytes;
});

/** A name used in metrics labels and paths: upstreams, routes, providers, groups, members. */
export const name = z.string().regex(/^[a-zA-Z0-9_.-]+$/, 'use letters, digits, "_", "-" or "."');

export const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' });

/** Header name -> value (use `${ENV}` for secrets). */
export const headerMap = z.record(
  z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a valid header name'),
  z.string(),
);

/** An address or CIDR block (`10.0.0.0/8`, `::1`, `192.168.1.7`), parsed to `{ address, prefix, family }`. */
export const cidr = z.string().transform((value, ctx) => {
  const [address = '', bits] = value.split('/');
  const family = isIP(address);
  const max = family === 6 ? 128 : 32;
  const prefix = bits === undefined ? max : Number(bits);
  if (
    family === 0 ||
    !Number.isInteger(prefix) ||
    prefix < 0 ||
    prefix > max ||
    (bits !== undefined && !/^\d+$/.test(bits))
  ) {
    ctx.addIssue({ code: 'custom', message: 'expected an IP address or a CIDR block like "10.0.0.0/8"' });
    return z.NEVER;
  }
  return { address, prefix, family: family === 6 ? ('ipv6' as const) : ('ipv4' as const) };
});
