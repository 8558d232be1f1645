// Writing replies to clients: a Reply (buffered or streamed) and the one JSON error shape.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { toGatewayError } from '../errors.js';
import type { GatewayError } from '../errors.js';
import type { Headers, Reply } from '../pipeline/types.js';

/**
 * Writes status, headers and body. A streamed body that fails midway cuts the connection: a truncated
 * body must never look like a complete one.
 */
export function writeReply(res: ServerResponse, status: number, headers: Headers, body: Reply['body']): void {
  res.writeHead(status, headers as OutgoingHttpHeaders);
  if (body === null || Buffer.isBuffer(body)) {
    res.end(body);
    return;
  }
  // pipe + listeners rather than stream.pipeline(), which builds and aborts an AbortController per call.
  body.on('error', () => res.destroy());
  res.on('close', () => {
    if (!body.readableEnded) body.destroy();
  });
  body.pipe(res);
}

/** `{"error":{"code","message"}}` with the code's status and `Retry-After` when it has one. */
export function errorReply(failure: GatewayError): Reply {
  const body = Buffer.from(JSON.stringify(failure.toJSON()));
  const headers: Headers = {
    ...failure.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(body.length),
  };
  if (failure.retryAfterS !== undefined) headers['retry-after'] = String(failure.retryAfterS);
  return { status: failure.status, headers, body };
}

/**
 * Sends `error` (anything thrown) as the JSON error body and returns it as a GatewayError, for the few
 * places that answer outside an exchange (Node's own client errors). If the response has already started,
 * the connection is cut instead.
 */
export function writeError(res: ServerResponse, error: unknown, requestId?: string): GatewayError {
  const failure = toGatewayError(error);
  if (res.headersSent) {
    res.destroy(failure);
    return failure;
  }
  const reply = errorReply(failure);
  const headers = requestId === undefined ? reply.headers : { ...reply.headers, 'x-request-id': requestId };
  writeReply(res, reply.status, headers, reply.body);
  return failure;
}
