// Cache keys: route, method and path in clear (for purging by prefix), the varying parts canonicalised and hashed.
import { createHash } from 'node:crypto';
import type { Call } from '../pipeline/types.js';
import { MAX_JSON_DEPTH, nestingExceeds } from '../pipeline/json.js';

export interface KeySpec {
  /** Query parameters that vary the response: names, or `'*'` for all (default). */
  query: readonly string[] | '*';
  /** Request headers that vary the response (lower-case names). */
  headers: readonly string[];
  /** Top-level JSON body fields that vary the response, or `'*'` for the whole body. */
  body: readonly string[] | '*';
  /** `principal` (default) puts the caller's identity in the key; `shared` when every caller gets the same data. */
  scope: 'principal' | 'shared';
}

/**
 * Builds `route|METHOD /path|<sha256>` (its {@link keyGroup} and a hash) where the hash covers the selected query parameters, headers and
 * body fields in canonical form (sorted keys, so `?b=2&a=1` and `?a=1&b=2` share an entry) and, for
 * principal-scoped routes, the caller's identity, so one caller can never read another's entry.
 * The identity is only ever stored hashed.
 */
export function cacheKey(route: string, call: Call, spec: KeySpec): string {
  const queryAt = call.path.indexOf('?');
  const path = queryAt === -1 ? call.path : call.path.slice(0, queryAt);
  const parts: Record<string, unknown> = {};
  if (queryAt !== -1) {
    const params = new URLSearchParams(call.path.slice(queryAt + 1));
    const query: Record<string, string[]> = {};
    for (const [name, value] of params) {
      if (spec.query === '*' || spec.query.includes(name)) (query[name] ??= []).push(value);
    }
    parts.q = query;
  }
  if (spec.headers.length > 0) {
    parts.h = Object.fromEntries(spec.headers.map((name) => [name, call.headers[name] ?? null]));
  }
  if (Buffer.isBuffer(call.body) && call.body.length > 0) parts.b = bodyPart(call.body, spec.body);
  if (spec.scope === 'principal') parts.p = call.principal ?? null;
  const hash = createHash('sha256').update(canonicalJson(parts)).digest('base64url');
  return keyGroup(route, call.method, path) + hash;
}

/**
 * The prefix every key of one method and path on a route starts with, whatever its query, principal or
 * Vary variant: `route|METHOD /path|`. Invalidation after a write drops whole groups (RFC 9111 §4.4).
 */
export function keyGroup(route: string, method: string, path: string): string {
  return `${route}|${method} ${path}|`;
}

/** The group of a key: everything up to its last `|` (hashes and variant suffixes hold none). */
export function groupOf(key: string): string {
  return key.slice(0, key.lastIndexOf('|') + 1);
}

/**
 * The key of a call that is not HTTP (an MCP tool call): `route|CALL|<sha256>` over its canonical
 * arguments and, for principal-scoped caches, the caller's identity. Same purge prefix as `cacheKey`.
 */
export function argumentsKey(
  route: string,
  args: unknown,
  principal: string | undefined,
  scope: KeySpec['scope'],
): string {
  const parts = scope === 'principal' ? { a: args, p: principal ?? null } : { a: args };
  return `${route}|CALL|${createHash('sha256').update(canonicalJson(parts)).digest('base64url')}`;
}

function bodyPart(body: Buffer, fields: KeySpec['body']): unknown {
  // Not JSON, or too deep to canonicalise safely: the exact bytes vary the response.
  if (nestingExceeds(body, MAX_JSON_DEPTH)) return body.toString('base64');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return body.toString('base64');
  }
  if (fields === '*' || parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return parsed;
  const object = parsed as Record<string, unknown>;
  return Object.fromEntries(fields.map((field) => [field, object[field] ?? null]));
}

/** JSON with object keys sorted at every depth, so equal values always serialise identically. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(object[k])}`).join(',')}}`;
}
