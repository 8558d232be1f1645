// Field types every part of the config schema shares: durations, sizes, names, URLs, header maps.
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
