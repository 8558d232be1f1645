// The LLM relay, format-neutral: fallback before the first byte, then every chunk relayed as it arrives, byte for byte.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { GatewayError } from '../errors.js';
import { discard } from '../pipeline/compose.js';
import { stripHopByHop } from '../pipeline/headers.js';
import type { Call, Handler, Headers, Reply, RequestContext } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';
import type { Transcript } from './transcript-buffer.js';

/** One place a request may go: a provider's stack and the model id to ask it for. */
export interface RelayTarget {
  /** The provider's name (metrics label and upstream name). */
  readonly provider: string;
  /** The provider's model id. */
  readonly model: string;
  /** `provider/model`, for events and errors. */
  readonly label: string;
  /** The provider's stack: bulkhead, deadline, retry before the first byte, breaker, pooled transport. */
  readonly handler: Handler;
  /** The provider's idle deadline between chunks, in ms (for the error message when it fires). */
  readonly idleMs: number;
}

/** What the relay needs of a wire format (chat completions, Responses, Messages...): its adapter's streaming half. */
export interface RelayFormat<T extends Tap = Tap> {
  /** Path appended to the provider's base URL. */
  readonly upstreamPath: string;
  /** A tap that reads transcript text (and usage) out of a streamed reply's raw bytes. */
  readonly streamTap: (onText: (text: string) => void) => T;
  /** Transcript text of a whole (non-streamed) reply. */
  readonly readReply: (body: Buffer) => { text: string | undefined };
  /** Bytes that end a broken SSE stream with this format's own error event (`tap`: the stream's, if any). */
  readonly streamError: (failure: GatewayError, tap?: T) => Buffer;
}

/** What the relay streams through: something that reads relayed bytes. */
export interface Tap {
  push(chunk: Buffer): void;
}

export interface RelayRequest<T extends Tap = Tap> {
  readonly res: ServerResponse;
  readonly ctx: RequestContext;
  /** Aborts when the client goes away; the provider call is cancelled at once. */
  readonly signal: AbortSignal;
  /** The target for the model, then its fallbacks. */
  readonly targets: readonly RelayTarget[];
  readonly format: RelayFormat<T>;
  /** Request headers for the provider (client credentials already removed). */
  readonly headers: Headers;
  /** The request body for a target (the model rewritten for it). */
  body(target: RelayTarget): Buffer;
  /** The conversation's transcript, when it is persisted; ended here (complete or not). */
  readonly transcript: Transcript | undefined;
  /** Registers how to end the stream if shutdown's grace runs out (the exchange's `onShutdown`). */
  onShutdown(end: () => void): void;
}

/** A non-streaming reply is kept for the transcript up to this size. */
const MAX_COMPLETION_BYTES = 8 * 1024 ** 2;

/**
 * Tries each target until one sends a first chunk, then relays the rest (`relayStream`) and resolves with
 * the status once headers are written. Fallback happens only before the first byte reached the client,
 * never after: a provider fault (429, 5xx, 401/403, 408, a broken or empty stream) moves to the next
 * target; any other 4xx is about the client's request and is relayed as the provider sent it. Throws only
 * before the first byte (the last target's error).
 */
export async function relay<T extends Tap>(request: RelayRequest<T>): Promise<number> {
  const { targets, signal, transcript } = request;
  let streaming = false;
  try {
    let lastError: unknown;
    for (let i = 0; i < targets.length; i++) {
      const target = targets[i]!;
      if (i > 0) {
        publish(events.llmFallback, {
          from: targets[i - 1]!.label,
          to: target.label,
          reason: lastError instanceof GatewayError ? lastError.code : 'error',
        });
      }
      const call: Call = {
        ctx: request.ctx,
        upstream: target.provider,
        method: 'POST',
        path: request.format.upstreamPath,
        headers: request.headers,
        body: request.body(target),
        idempotent: true,
        principal: undefined,
        signal,
      };
      let reply: Reply;
      try {
        reply = await target.handler(call);
      } catch (error) {
        if (signal.aborted) throw abortReason(signal);
        lastError = error;
        continue;
      }
      const stream = reply.body as Readable;
      if (reply.status >= 200 && reply.status < 300) {
        let first: Buffer | null;
        try {
          first = await firstChunk(stream);
        } catch (error) {
          if (signal.aborted) throw abortReason(signal);
          lastError = bodyError(error, target);
          continue;
        }
        if (first === null) {
          lastError = new GatewayError('GW_UPSTREAM_PROTOCOL', `${target.label} sent an empty reply`);
          continue;
        }
        streaming = true;
        relayStream(request, reply, stream, first, target, transcript);
        return reply.status;
      }
      if (isProviderFault(reply.status)) {
        discard(reply);
        lastError = statusError(reply, target);
        continue;
      }
      // Any other 4xx is about the client's request: relay the provider's answer as is.
      streaming = true;
      stream.pause();
      relayStream(request, reply, stream, null, target, undefined);
      transcript?.end(false);
      return reply.status;
    }
    throw lastError;
  } finally {
    if (!streaming) transcript?.end(false);
  }
}

/** Writes headers and the first chunk, then every further chunk as it arrives, with backpressure. */
function relayStream<T extends Tap>(
  request: RelayRequest<T>,
  reply: Reply,
  stream: Readable,
  first: Buffer | null,
  target: RelayTarget,
  transcript: Transcript | undefined,
): void {
  const { res, ctx, format } = request;
  const provider = target.provider;
  const headers = stripHopByHop(reply.headers);
  const contentType = String(headers['content-type'] ?? '');
  const sse = contentType.includes('text/event-stream');
  if (sse) headers['x-accel-buffering'] = 'no';
  headers['x-request-id'] = ctx.id;
  res.writeHead(reply.status, headers as OutgoingHttpHeaders);
  let tap: T | undefined;
  let kept: Buffer[] | undefined;
  let keptBytes = 0;
  if (transcript !== undefined) {
    if (sse) tap = format.streamTap((text) => transcript.append(text));
    else kept = [];
  }
  let chunks = 0;
  let bytes = 0;
  let last = ctx.startedAt;
  const onData = (chunk: Buffer) => {
    const ok = res.write(chunk);
    const now = performance.now();
    publish(events.llmChunk, { provider, gapMs: now - last });
    last = now;
    chunks++;
    bytes += chunk.length;
    if (tap !== undefined) tap.push(chunk);
    else if (kept !== undefined && keptBytes + chunk.length <= MAX_COMPLETION_BYTES) {
      kept.push(chunk);
      keptBytes += chunk.length;
    }
    if (!ok) {
      stream.pause();
      res.once('drain', () => stream.resume());
    }
  };
  let done = false;
  const finish = (outcome: 'complete' | 'aborted' | 'error') => {
    if (done) return;
    done = true;
    res.off('close', onClientGone);
    if (kept !== undefined && outcome === 'complete') {
      const content = format.readReply(Buffer.concat(kept, keptBytes)).text;
      if (content !== undefined) transcript!.append(content);
    }
    transcript?.end(outcome === 'complete');
    publish(events.llmStreamEnd, {
      provider,
      outcome,
      chunks,
      bytes,
      durationMs: performance.now() - ctx.startedAt,
    });
  };
  const onClientGone = () => {
    if (!res.writableFinished) {
      stream.destroy();
      finish('aborted');
    }
  };
  res.once('close', onClientGone);
  const onEnd = () => {
    res.end();
    finish('complete');
  };
  /** Ends the stream with the format's error event (SSE), else cuts the connection. */
  const fail = (failure: GatewayError) => {
    if (sse && !res.writableEnded) res.end(format.streamError(failure, tap));
    else res.destroy(failure);
    finish('error');
  };
  const onError = (error: Error) => {
    if (res.destroyed || done) {
      finish('aborted');
      return;
    }
    fail(bodyError(error, target));
  };
  stream.on('data', onData);
  stream.once('end', onEnd);
  stream.once('error', onError);
  request.onShutdown(() => {
    stream.removeListener('error', onError);
    stream.on('error', ignore);
    stream.destroy();
    if (!done) fail(new GatewayError('GW_SHUTTING_DOWN', 'the gateway shut down during the stream'));
  });

  if (first !== null) {
    onData(first);
    publish(events.llmFirstByte, { provider, durationMs: performance.now() - ctx.startedAt });
  }
  // A one-chunk body may have ended (or failed) before these listeners were attached.
  if (stream.errored !== null) onError(stream.errored);
  else if (stream.readableEnded) onEnd();
  stream.resume();
}

/** Resolves with the first body chunk (the stream left paused), null when it ends empty; rejects on error. */
function firstChunk(stream: Readable): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      // Until the relay attaches its own listeners, an error must not go unhandled (it reads `errored`).
      stream.on('error', ignore);
    };
    const onData = (chunk: Buffer) => {
      stream.pause();
      cleanup();
      resolve(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(null);
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
}

function ignore(): void {}

/** Statuses that say the provider (not the request) failed: worth a fallback. */
function isProviderFault(status: number): boolean {
  return status === 429 || status >= 500 || status === 401 || status === 403 || status === 408;
}

function statusError(reply: Reply, target: RelayTarget): GatewayError {
  const where = `${target.label} answered ${reply.status}`;
  const retryAfter = Number(
    Array.isArray(reply.headers['retry-after'])
      ? reply.headers['retry-after'][0]
      : reply.headers['retry-after'],
  );
  const retryAfterS = Number.isFinite(retryAfter) && retryAfter > 0 ? Math.ceil(retryAfter) : undefined;
  if (reply.status === 429)
    return new GatewayError('GW_UPSTREAM_RATE_LIMITED', where, { retryAfterS: retryAfterS ?? 1 });
  if (reply.status === 401 || reply.status === 403) return new GatewayError('GW_UPSTREAM_AUTH_FAILED', where);
  if (reply.status === 408 || reply.status === 504) return new GatewayError('GW_UPSTREAM_TIMEOUT', where);
  return new GatewayError('GW_UPSTREAM_UNAVAILABLE', where, { retryAfterS });
}

/** Maps an error of a response body (idle timeout, reset) onto a gateway code. */
function bodyError(error: unknown, target: RelayTarget): GatewayError {
  if (error instanceof GatewayError) return error;
  const code = (error as { code?: string }).code;
  if (code === 'UND_ERR_BODY_TIMEOUT') {
    return new GatewayError('GW_UPSTREAM_TIMEOUT', `${target.label}: no chunk for ${target.idleMs} ms`, {
      cause: error,
    });
  }
  return new GatewayError('GW_UPSTREAM_UNAVAILABLE', `${target.label}: the stream broke`, { cause: error });
}

function abortReason(signal: AbortSignal): GatewayError {
  const reason: unknown = signal.reason;
  return reason instanceof GatewayError
    ? reason
    : new GatewayError('GW_CLIENT_CLOSED', 'client closed the request');
}
