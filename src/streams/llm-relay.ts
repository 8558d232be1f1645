// The LLM relay, format-neutral: fallback before the first byte, then every chunk relayed as it arrives, byte for byte.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { GatewayError } from '../errors.js';
import { bufferReply } from '../pipeline/buffer.js';
import { discard } from '../pipeline/compose.js';
import { stripHopByHop } from '../pipeline/headers.js';
import type { Call, Handler, Headers, Reply, RequestContext } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';
import { providerError, providerVerdict } from './provider-error.js';
import type { Transcript } from './transcript-buffer.js';

/** One place a request may go: a provider's stack and the model id to ask it for. */
export interface RelayTarget {
  /** The provider's name (metrics label and upstream name). */
  readonly provider: string;
  /** The provider's model id (`''` for requests about stored state, which name no model). */
  readonly model: string;
  /** `provider/model`, for events and errors. */
  readonly label: string;
  /** The provider's stack: bulkhead, deadline, retry before the first byte, breaker, pooled transport. */
  readonly handler: Handler;
  /** The provider's idle deadline between chunks, in ms (for the error message when it fires). */
  readonly idleMs: number;
}

/** Token counts a provider reported; a field is absent when the provider did not say. */
export interface Usage {
  inputTokens?: number;
  outputTokens?: number;
}

/** What a reply holds for the gateway: transcript text, usage, and the id the provider gave it. */
export interface ReplyContent {
  text: string | undefined;
  usage: Usage | undefined;
  /** The reply's id, where later requests may refer to it (a Responses `resp_…`). */
  id?: string;
}

/** Scans one streamed reply's bytes as they are relayed (never parsing every chunk). */
export interface StreamTap {
  /** Feeds relayed bytes, in order. Never throws. */
  push(chunk: Buffer): void;
  /** The usage seen so far (complete once the stream ended). */
  usage(): Usage | undefined;
  /** The reply's id, once seen (formats whose replies later requests refer to). */
  id?(): string | undefined;
}

/** What the relay needs of a wire format (chat completions, Responses, Messages...). */
export interface RelayFormat {
  /** The format's name, a metrics label. */
  readonly name: string;
  /** Path appended to the provider's base URL. */
  readonly upstreamPath: string;
  /** Text, usage and id of a whole (non-streamed) reply; fields undefined when it holds none. */
  readonly readReply: (body: Buffer) => ReplyContent;
  /**
   * A tap reading usage (and, with `onText`, transcript text) out of a streamed reply's raw bytes.
   * Absent for formats that never stream.
   */
  readonly streamTap?: (onText: ((text: string) => void) | undefined) => StreamTap;
  /** Bytes that end a broken SSE stream with this format's own error event (`tap`: the stream's). */
  readonly streamError?: (failure: GatewayError, tap?: StreamTap) => Buffer;
}

/** Whether a provider's non-2xx answer is worth the next target (`fallback`) or goes to the client as is. */
export type Verdict = 'fallback' | 'relay';

/** One request to the providers, tried target by target until one answers. */
export interface ProviderRequest {
  readonly ctx: RequestContext;
  /** Aborts when the client goes away (or, for shared work, when every caller has); cancels the call at once. */
  readonly signal: AbortSignal;
  /** Who is asking (for the provider call's envelope). */
  readonly principal: string | undefined;
  /** The target for the model, then its fallbacks. */
  readonly targets: readonly RelayTarget[];
  readonly method: string;
  /** Path appended to the provider's base URL, query included. */
  readonly path: string;
  /** Request headers for the provider (client credentials already removed). */
  readonly headers: Headers;
  /** The request body for a target (the model rewritten for it); undefined for none. */
  body(target: RelayTarget): Buffer | undefined;
  /**
   * What a non-2xx status means (`last`: it came from the last target). Default `providerVerdict`: 429,
   * 5xx, 401/403 and 408 fall back, every other status is relayed.
   */
  readonly verdict?: (status: number, last: boolean) => Verdict;
}

/** The answer that ended the search: a 2xx with its first chunk, or a status to relay as it is. */
export interface Answer {
  readonly target: RelayTarget;
  readonly reply: Reply;
  /** The reply's body, paused. */
  readonly stream: Readable;
  /** The first body chunk of a 2xx reply; null for a non-2xx one relayed as it is. */
  readonly first: Buffer | null;
}

export interface RelayRequest extends ProviderRequest {
  readonly res: ServerResponse;
  readonly format: RelayFormat;
  /** The conversation's transcript, when it is persisted; ended here (complete or not). */
  readonly transcript: Transcript | undefined;
  /**
   * Scan a streamed reply for its usage (and id) even without a transcript. False when the reply reports
   * none (a chat stream without `include_usage`): its bytes are then relayed without being scanned.
   */
  readonly tapped: boolean;
  /** Registers how to end the stream if shutdown's grace runs out (the exchange's `onShutdown`). */
  onShutdown(end: () => void): void;
  /** Called once a 2xx reply has ended (complete or not) with what the relay read of it. */
  onReply?(target: RelayTarget, content: ReplyContent): void;
}

/** A non-streaming reply is kept (for its usage, id and transcript text) up to this size. */
const MAX_COMPLETION_BYTES = 8 * 1024 ** 2;
/** A provider's error body is read up to this size, for its message. */
const MAX_ERROR_BYTES = 64 * 1024;

/**
 * Tries each target until one sends a first chunk (or a status the client must see), then relays the rest
 * and resolves with the status once headers are written. Fallback happens only before the first byte
 * reached the client, never after (see `firstAnswer`). Throws only before the first byte: the gateway
 * error for the last target's failure (`providerError`: a 429 stays a 429 with its `Retry-After`, a 5xx
 * becomes a 502 keeping the provider's message).
 */
export async function relay(request: RelayRequest): Promise<number> {
  let answer: Answer;
  try {
    answer = await firstAnswer(request);
  } catch (error) {
    request.transcript?.end(false);
    const last = request.targets.at(-1);
    publish(events.llmStreamEnd, {
      provider: last?.provider ?? '',
      format: request.format.name,
      outcome: request.signal.aborted ? 'aborted' : 'error',
      chunks: 0,
      bytes: 0,
      durationMs: performance.now() - request.ctx.startedAt,
      usage: undefined,
    });
    throw error;
  }
  relayStream(request, answer);
  return answer.reply.status;
}

/**
 * Sends `request` to each target in turn until one answers with a 2xx and its first body chunk, or with a
 * status its verdict relays (any 4xx but 401/403/408/429 by default: about the request, so another
 * provider would refuse it too). A provider fault (a fallback status, a connection failure, a timeout, a
 * broken or empty body) moves to the next target. Throws, once the targets are exhausted, the gateway
 * error for the last failure; `GW_CLIENT_CLOSED` (or the deadline) when the signal aborts.
 */
export async function firstAnswer(request: ProviderRequest): Promise<Answer> {
  const { targets, signal } = request;
  const verdict = request.verdict ?? providerVerdict;
  // Set by each failed target; built lazily, as an Error captures a stack (a cost on every request otherwise).
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
      method: request.method,
      path: request.path,
      headers: request.headers,
      body: request.body(target),
      idempotent: true,
      principal: request.principal,
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
      return { target, reply, stream, first };
    }
    if (verdict(reply.status, i === targets.length - 1) === 'fallback') {
      lastError = await failure(reply, target, signal);
      continue;
    }
    stream.pause();
    return { target, reply, stream, first: null };
  }
  throw lastError ?? new GatewayError('GW_LLM_NO_PROVIDER', 'no provider to send the request to');
}

/** The gateway error for a provider's failed answer, its (bounded) body read for the provider's message. */
async function failure(reply: Reply, target: RelayTarget, signal: AbortSignal): Promise<GatewayError> {
  let body: Buffer = Buffer.alloc(0);
  try {
    const buffered = await bufferReply(reply, MAX_ERROR_BYTES);
    if (buffered.complete) body = buffered.reply.body ?? body;
    else discard(buffered.reply);
  } catch {
    // A broken error body: the status alone says what happened.
  }
  if (signal.aborted) throw abortReason(signal);
  return providerError({ status: reply.status, headers: reply.headers, body }, target.label);
}

/** Writes headers and the first chunk, then every further chunk as it arrives, with backpressure. */
function relayStream(request: RelayRequest, answer: Answer): void {
  const { res, ctx, format } = request;
  const { target, reply, stream, first } = answer;
  const provider = target.provider;
  const ok = first !== null;
  // A relayed error is the client's to read; nothing in it belongs to a transcript.
  const transcript = ok ? request.transcript : undefined;
  if (!ok) request.transcript?.end(false);
  const headers = stripHopByHop(reply.headers);
  const contentType = String(headers['content-type'] ?? '');
  const sse = contentType.includes('text/event-stream');
  if (sse) headers['x-accel-buffering'] = 'no';
  headers['x-request-id'] = ctx.id;
  res.writeHead(reply.status, headers as OutgoingHttpHeaders);
  let tap: StreamTap | undefined;
  let kept: Buffer[] | undefined;
  let keptBytes = 0;
  if (ok) {
    if (sse && format.streamTap !== undefined && (transcript !== undefined || request.tapped)) {
      tap = format.streamTap(transcript === undefined ? undefined : (text) => transcript.append(text));
    } else if (!sse) kept = [];
  }
  let chunks = 0;
  let bytes = 0;
  let last = ctx.startedAt;
  const onData = (chunk: Buffer) => {
    const written = res.write(chunk);
    const now = performance.now();
    publish(events.llmChunk, { provider, format: format.name, gapMs: now - last });
    last = now;
    chunks++;
    bytes += chunk.length;
    if (tap !== undefined) tap.push(chunk);
    else if (kept !== undefined && keptBytes + chunk.length <= MAX_COMPLETION_BYTES) {
      kept.push(chunk);
      keptBytes += chunk.length;
    }
    if (!written) {
      stream.pause();
      res.once('drain', () => stream.resume());
    }
  };
  let done = false;
  const finish = (outcome: 'complete' | 'aborted' | 'error') => {
    if (done) return;
    done = true;
    res.off('close', onClientGone);
    let content: ReplyContent | undefined;
    if (tap !== undefined) content = { text: undefined, usage: tap.usage(), id: tap.id?.() };
    else if (kept !== undefined && outcome === 'complete') {
      content = format.readReply(Buffer.concat(kept, keptBytes));
      if (content.text !== undefined) transcript?.append(content.text);
    }
    transcript?.end(outcome === 'complete');
    publish(events.llmStreamEnd, {
      provider,
      format: format.name,
      outcome,
      chunks,
      bytes,
      durationMs: performance.now() - ctx.startedAt,
      usage: content?.usage,
    });
    if (content !== undefined) request.onReply?.(target, content);
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
    if (sse && format.streamError !== undefined && !res.writableEnded)
      res.end(format.streamError(failure, tap));
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
    publish(events.llmFirstByte, {
      provider,
      format: format.name,
      durationMs: performance.now() - ctx.startedAt,
    });
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

/** Maps an error of a response body (idle timeout, reset) onto a gateway code. */
export function bodyError(error: unknown, target: RelayTarget): GatewayError {
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
