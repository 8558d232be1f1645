// The request target, made safe to route: origin-form only, dot-segments removed, ambiguous encodings refused.
import { GatewayError } from '../errors.js';

/** A request target split into its normalised path and its query (`''` or starting with `?`). */
export interface Target {
  readonly path: string;
  readonly query: string;
}

/**
 * Reads `req.url` as an origin-form target (RFC 9112 §3.2.1) and returns the path with dot-segments removed
 * (RFC 3986 §5.2.4, `%2E` counting as `.`) and empty segments merged, so that routing, `rewrite` prefixes
 * and cache keys all see the path the upstream will see. Refused with 400 `GW_BAD_REQUEST`: absolute-form
 * and asterisk-form targets (Slipstream is not a forward proxy: `GET http://169.254.169.254/` must not
 * reach an upstream), a `..` that climbs above the root, encoded slashes and backslashes (`%2F`, `%5C`,
 * `\`), `..;`-style segments some servers read as `..`, and NUL. The common case — a clean path — is
 * returned as is after a few `indexOf` scans.
 */
export function parseTarget(url: string): Target {
  if (url.charCodeAt(0) !== 47 /* "/" */) {
    throw new GatewayError(
      'GW_BAD_REQUEST',
      url === '*'
        ? 'the asterisk-form request target is not supported'
        : 'the request target must be a path (origin-form): Slipstream is not a forward proxy',
    );
  }
  const queryAt = url.indexOf('?');
  const raw = queryAt === -1 ? url : url.slice(0, queryAt);
  const query = queryAt === -1 ? '' : url.slice(queryAt);
  if (!suspicious(raw)) return { path: raw, query };
  return { path: normalise(raw), query };
}

/** Whether a path needs the careful look: a dot after a slash, a percent sign, a doubled slash or a backslash. */
function suspicious(path: string): boolean {
  return (
    path.includes('/.') ||
    path.includes('%') ||
    path.includes('//') ||
    path.includes('\\') ||
    path.includes(';')
  );
}

const ENCODED_SEPARATOR = /%(?:2f|5c|00)/i;

function normalise(path: string): string {
  if (path.includes('\\') || ENCODED_SEPARATOR.test(path)) {
    throw new GatewayError(
      'GW_BAD_REQUEST',
      'the request path has an encoded "/", a "\\" or a NUL: it cannot be routed unambiguously',
    );
  }
  const out: string[] = [];
  const segments = path.split('/');
  // segments[0] is the empty string before the leading "/".
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!;
    const plain = segment.replace(/%2e/gi, '.');
    if (plain === '.' || (plain === '' && i < segments.length - 1)) continue;
    if (plain === '..') {
      if (out.length === 0) {
        throw new GatewayError('GW_BAD_REQUEST', 'the request path climbs above the root with ".."');
      }
      out.pop();
      continue;
    }
    if (/^\.\.?;/.test(plain)) {
      throw new GatewayError(
        'GW_BAD_REQUEST',
        `the path segment "${segment.slice(0, 32)}" is a disguised dot-segment`,
      );
    }
    out.push(segment);
  }
  // A trailing "/." or "/.." leaves a trailing slash (RFC 3986 §5.2.4).
  const last = segments[segments.length - 1]!.replace(/%2e/gi, '.');
  const trailing = last === '.' || last === '..' ? '/' : '';
  return `/${out.join('/')}${trailing && out.length > 0 ? trailing : ''}`;
}
