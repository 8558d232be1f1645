// Header hygiene for a proxy: hop-by-hop headers stay on their hop (RFC 9110 §7.6.1).
import type { IncomingHttpHeaders } from 'node:http';
import type { Headers } from '../pipeline/types.js';

/** Headers that describe one connection, not the message: never forwarded in either direction. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
  // RFC 9110 §10.1.1: the gateway answers `Expect: 100-continue` itself (Node sends the 100); forwarding it
  // would make the upstream client refuse the request, and a client's header must never fail an upstream.
  'expect',
]);

/**
 * Copies `headers` without hop-by-hop headers, without any header the `Connection` header names,
 * and without `host` (the pool sets the upstream's). Used for requests and responses alike.
 */
export function stripHopByHop(headers: IncomingHttpHeaders | Headers): Headers {
  const connection = headers.connection;
  const named =
    typeof connection === 'string' && connection !== 'keep-alive' && connection !== 'close'
      ? new Set(connection.split(',').map((h) => h.trim().toLowerCase()))
      : undefined;
  const out: Headers = {};
  for (const key in headers) {
    if (HOP_BY_HOP.has(key) || named?.has(key) === true) continue;
    out[key] = headers[key];
  }
  return out;
}
