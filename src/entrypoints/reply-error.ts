// Writes a GatewayError to the client as `{"error":{"code","message"}}` with the mapped status.
import type { ServerResponse } from 'node:http';
import { toGatewayError } from '../errors.js';
import type { GatewayError } from '../errors.js';

/**
 * Sends `error` (anything thrown) as a JSON error body and returns it as a GatewayError.
 * If the response has already started (a stream failed midway), the connection is cut instead:
 * a truncated body must not look like a complete one.
 */
export function writeError(res: ServerResponse, error: unknown, requestId?: string): GatewayError {
  const failure = toGatewayError(error);
  if (res.headersSent) {
    res.destroy(failure);
    return failure;
  }
  const body = JSON.stringify(failure.toJSON());
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  };
  if (failure.retryAfterS !== undefined) headers['retry-after'] = failure.retryAfterS;
  if (requestId !== undefined) headers['x-request-id'] = requestId;
  res.writeHead(failure.status, headers).end(body);
  return failure;
}
