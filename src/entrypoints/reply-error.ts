// Writes a GatewayError to the client as `{"error":{"code","message"}}` with the mapped status.
import type { FastifyReply } from 'fastify';
import { toGatewayError } from '../errors.js';
import type { GatewayError } from '../errors.js';

/**
 * Sends `error` (anything thrown) as a JSON error body and returns it as a GatewayError.
 * If the response has already started (a stream failed midway), the connection is cut instead:
 * a truncated body must not look like a complete one.
 */
export function sendError(reply: FastifyReply, error: unknown, requestId?: string): GatewayError {
  const failure = toGatewayError(error);
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy(failure);
    return failure;
  }
  reply.code(failure.status).header('content-type', 'application/json; charset=utf-8');
  if (failure.retryAfterS !== undefined) reply.header('retry-after', String(failure.retryAfterS));
  if (requestId !== undefined) reply.header('x-request-id', requestId);
  void reply.send(JSON.stringify(failure.toJSON()));
  return failure;
}
