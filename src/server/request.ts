// What every entrypoint does with an incoming request: give it an id and a context, read its body within bounds.
import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors.js';
import type { Cancel } from '../pipeline/cancel.js';
import type { RequestContext } from '../pipeline/types.js';

let requestCounter = 0;
const idPrefix = `${process.pid.toString(36)}-${Date.now().toString(36)}-`;

/** The client's `x-request-id` when it is a short string, else a fresh id unique to this process. */
export function requestId(headers: IncomingMessage['headers']): string {
  const incoming = headers['x-request-id'];
  return typeof incoming === 'string' && incoming.length <= 128
    ? incoming
    : idPrefix + (++requestCounter).toString(36);
}

/**
 * A fresh request context for `route` (a metrics label: never a client-chosen string). `cancel`, when
 * given, is the request's own cancellation (see `RequestContext.cancel`).
 */
export function requestContext(
  headers: IncomingMessage['headers'],
  route: string,
  cancel?: Cancel,
  clientIp?: string,
): RequestContext {
  // One shape for every context (no optional fields spread in), so the code reading them stays monomorphic.
  return {
    id: requestId(headers),
    route,
    startedAt: performance.now(),
    upstreamMs: 0,
    attempts: 0,
    cancel,
    clientIp,
  };
}

/** `413 GW_PAYLOAD_TOO_LARGE` naming the limit. */
export function tooLarge(limit: number): GatewayError {
  return new GatewayError('GW_PAYLOAD_TOO_LARGE', `request body exceeds ${limit} bytes`, {
    data: { maxBytes: limit },
  });
}

/**
 * Reads the whole request body, at most `limit` bytes: a declared or actual larger body fails with
 * `GW_PAYLOAD_TOO_LARGE` as soon as it is known, without reading the rest.
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const length = req.headers['content-length'];
  if (length !== undefined && Number(length) > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limit) throw tooLarge(limit);
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    if (error instanceof GatewayError) throw error;
    // The client hung up mid-upload: its doing, not ours (no 5xx, no "request failed" alarm).
    throw new GatewayError('GW_CLIENT_CLOSED', 'client closed the request while sending its body', {
      cause: error,
    });
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

/** A percent-decoded path segment, or undefined when its encoding is malformed (`%E0%A4`). */
export function decodeSegment(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}
