// Validators and conditional requests (RFC 9110 §13.1, RFC 9111 §4.3): revalidating upstream, answering 304.
import type { Headers } from '../pipeline/types.js';
import { parseHttpDate } from './http-date.js';

type StoredHeaders = Readonly<Record<string, string | string[] | undefined>>;

/**
 * Requests the cache must leave to the origin: preconditions only the origin can evaluate (`If-Match`,
 * `If-Unmodified-Since`, RFC 9111 §4.3.2) and range requests (partial content is never stored).
 */
export function originOnly(headers: Headers): boolean {
  return (
    headers.range !== undefined ||
    headers['if-match'] !== undefined ||
    headers['if-unmodified-since'] !== undefined ||
    headers['if-range'] !== undefined
  );
}

/** Whether a response can be revalidated: it has an `ETag` or a `Last-Modified`. */
export function hasValidator(headers: StoredHeaders): boolean {
  return typeof headers.etag === 'string' || typeof headers['last-modified'] === 'string';
}

/**
 * The request headers without the client's own `If-None-Match` / `If-Modified-Since`: the cache fetches
 * the full response for everyone and answers each client's condition itself. Returns `headers` itself
 * when there are none (the common case costs no copy).
 */
export function withoutConditionals(headers: Headers): Headers {
  if (headers['if-none-match'] === undefined && headers['if-modified-since'] === undefined) return headers;
  const out = { ...headers };
  delete out['if-none-match'];
  delete out['if-modified-since'];
  return out;
}

/** `headers` asking the origin whether `stored` is still current (§4.3.1): its ETag and Last-Modified. */
export function revalidationHeaders(headers: Headers, stored: StoredHeaders): Headers {
  const out: Headers = { ...headers };
  if (typeof stored.etag === 'string') out['if-none-match'] = stored.etag;
  if (typeof stored['last-modified'] === 'string') out['if-modified-since'] = stored['last-modified'];
  return out;
}

/**
 * Whether a 304 describes the stored response it answered (§4.3.4): a 304 naming a validator must name
 * the stored one (ETags by weak comparison); one with no validator applies to the response asked about.
 */
export function notModifiedMatches(stored: StoredHeaders, notModified: Headers): boolean {
  const etag = notModified.etag;
  if (typeof etag === 'string') return typeof stored.etag === 'string' && weakEqual(stored.etag, etag);
  const modified = notModified['last-modified'];
  if (typeof modified === 'string') return stored['last-modified'] === modified;
  return true;
}

/** Headers the cache never takes from a 304 into a stored response (§3.2): framing, and cookies it never stores. */
const NOT_UPDATED = new Set(['content-length', 'set-cookie', 'age', 'x-request-id', 'x-slipstream-cache']);

/** The stored headers updated with a 304's (§3.2): each field the 304 carries replaces the stored one. */
export function updatedHeaders(
  stored: StoredHeaders,
  notModified: Headers,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in stored) {
    const value = stored[name];
    if (value !== undefined) out[name] = value;
  }
  for (const name in notModified) {
    const value = notModified[name];
    if (value !== undefined && !NOT_UPDATED.has(name)) out[name] = value;
  }
  return out;
}

/**
 * Whether a client's conditional GET or HEAD is answered 304 by `response` (§4.3.2, RFC 9110 §13.1):
 * `If-None-Match` by weak comparison (`*` matches any response); without it, `If-Modified-Since` against
 * the response's Last-Modified, else its Date, else the time it was received (`receivedAt`, epoch ms).
 */
export function clientNotModified(request: Headers, response: StoredHeaders, receivedAt: number): boolean {
  const ifNoneMatch = request['if-none-match'];
  if (ifNoneMatch !== undefined) {
    const etag = response.etag;
    const tags = (Array.isArray(ifNoneMatch) ? ifNoneMatch.join(',') : ifNoneMatch).split(',');
    return tags.some((tag) => tag.trim() === '*' || (typeof etag === 'string' && weakEqual(tag, etag)));
  }
  const since = parseHttpDate(request['if-modified-since']);
  if (since === undefined) return false; // absent or not a valid HTTP-date: ignored (RFC 9110 §13.1.3)
  const modified = parseHttpDate(response['last-modified']) ?? parseHttpDate(response.date) ?? receivedAt;
  return modified <= since;
}

/** Fields a 304 carries (RFC 9110 §15.4.5): those a 200 would have sent that guide caches. */
const NOT_MODIFIED_FIELDS = [
  'cache-control',
  'content-location',
  'date',
  'etag',
  'expires',
  'last-modified',
  'vary',
];

/** The headers of a 304 answering for a response with `headers`. */
export function notModifiedHeaders(headers: StoredHeaders): Headers {
  const out: Headers = {};
  for (const name of NOT_MODIFIED_FIELDS) if (headers[name] !== undefined) out[name] = headers[name];
  return out;
}

/** RFC 9110 §8.8.3.2: two entity-tags match weakly when their opaque tags are equal, `W/` or not. */
function weakEqual(a: string, b: string): boolean {
  const opaque = (tag: string) => {
    const t = tag.trim();
    return t.startsWith('W/') ? t.slice(2) : t;
  };
  return opaque(a) === opaque(b);
}
