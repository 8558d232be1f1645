// Chat entrypoint: OpenAI-compatible `/v1/chat/completions` relayed chunk by chunk, with fallbacks and transcripts.
import { createHash } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { LlmConfig, TranscriptsConfig } from '../config/llm-schema.js';
import { GatewayError } from '../errors.js';
import { discard } from '../pipeline/compose.js';
import type { Call, Headers, Reply, RequestContext } from '../pipeline/types.js';
import { postgresStore } from '../stores/postgres.js';
import { sqliteStore } from '../stores/sqlite.js';
import { completionContent, SseContentTap } from '../streams/sse-tap.js';
import { TranscriptBuffer } from '../streams/transcript-buffer.js';
import type { Transcript } from '../streams/transcript-buffer.js';
import { events, publish } from '../telemetry/events.js';
import { llmProviders } from '../upstreams/llm-provider.js';
import type { LlmTarget } from '../upstreams/llm-provider.js';
import { newTurn, rewriteModel } from './chat-request.js';
import { stripHopByHop } from './headers.js';
import { writeError } from './reply-error.js';
import { decodeSegment, readBody, requestContext } from './request.js';

export interface ChatEntrypointOptions {
  /** True once shutdown began: new requests get 503 GW_SHUTTING_DOWN. */
  isDraining: () => boolean;
  /**
   * Header naming the caller (lower case; `server.principalHeader`). Transcripts are stored under the
   * caller's identity, hashed: `GET /v1/sessions/:id` only ever returns the asking caller's sessions.
   */
  principalHeader: string;
  logger: Logger;
}

export interface ChatEntrypoint {
  /** Raw `node:http` handler; true when it took the request. */
  readonly handle: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Pre-warms provider connections. Never throws. */
  warm(): Promise<void>;
  /**
   * Waits up to `graceMs` (default 10 s) for requests in flight, cuts the rest, then writes every
   * transcript in what is left of `graceMs` (at least 1 s, for the rows of streams cut at the end), and
   * closes the store (cutting its connections at that deadline) and the provider pools. Call once the
   * server stopped accepting.
   */
  close(graceMs?: number): Promise<void>;
  /** The transcript buffer, when `llm.transcripts` is configured. */
  readonly transcripts: TranscriptBuffer | undefined;
}

const ROUTE = 'chat';
const COMPLETIONS = '/v1/chat/completions';
const MODELS = '/v1/models';
const SESSIONS = '/v1/sessions/';
const SESSION_HEADER = 'x-slipstream-session';
/** Request headers that stay with the client: credentials, and encodings the transcript tap could not read. */
const CLIENT_ONLY = ['authorization', 'cookie', 'content-length', 'accept-encoding', SESSION_HEADER];
/** The least time the transcript writer gets at shutdown, for the last rows of streams cut at the end of the grace. */
const FINAL_WRITE_MS = 1_000;
/** A non-streaming reply is kept for the transcript up to this size. */
const MAX_COMPLETION_BYTES = 8 * 1024 ** 2;

/** Builds the transcript buffer and its store from config. */
export function createTranscripts(config: TranscriptsConfig, logger?: Logger): TranscriptBuffer {
  const store =
    config.store === 'postgres'
      ? postgresStore({
          url: config.postgres.url!,
          tablePrefix: config.postgres.tablePrefix,
          connections: config.postgres.connections,
          queryTimeoutMs: config.postgres.queryTimeout,
        })
      : sqliteStore({ path: config.sqlite.path });
  return new TranscriptBuffer({
    store,
    intervalMs: config.interval,
    minChars: config.minChars,
    persistDeltas: config.persistDeltas,
    maxQueue: config.maxQueue,
    maxQueueChars: config.maxQueueChars,
    retention: {
      maxAgeMs: config.retention.maxAge,
      maxMessagesPerSession: config.retention.maxMessagesPerSession,
      maxSessions: config.retention.maxSessions,
      cleanupIntervalMs: config.retention.cleanupInterval,
    },
    logger,
  });
}

/**
 * Builds the chat entrypoint. The hot path: read the (small) request body, parse it once, resolve the
 * model, rewrite only `model`, send to the provider; then relay every upstream chunk to the client as
 * it arrives, byte for byte, never parsing it (the transcript tap scans bytes). Retries and fallbacks
 * happen only before the first byte reached the client; after it, a failure ends the stream with an SSE
 * `event: error` carrying the gateway error. A client that goes away aborts the upstream request at once.
 */
export function createChatEntrypoint(config: LlmConfig, options: ChatEntrypointOptions): ChatEntrypoint {
  const providers = llmProviders(config);
  const transcripts =
    config.transcripts === undefined ? undefined : createTranscripts(config.transcripts, options.logger);
  const modelList = Buffer.from(
    JSON.stringify({
      object: 'list',
      data: providers.models().map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: m.provider })),
    }),
  );

  const handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    if (path === COMPLETIONS) {
      if (req.method === 'POST') completions(req, res).catch((error: unknown) => writeError(res, error));
      else notAllowed(req, res);
      return true;
    }
    if (path === MODELS) {
      if (req.method !== 'GET') notAllowed(req, res);
      else {
        req.resume();
        res
          .writeHead(200, { 'content-type': 'application/json', 'content-length': modelList.length })
          .end(modelList);
      }
      return true;
    }
    if (path.startsWith(SESSIONS) && transcripts !== undefined) {
      if (req.method !== 'GET') notAllowed(req, res);
      else {
        const id = decodeSegment(path.slice(SESSIONS.length));
        if (id === undefined || id === '') {
          writeError(res, new GatewayError('GW_BAD_REQUEST', 'the session id in the path is malformed'));
        } else if (req.headers[options.principalHeader] === undefined) {
          // Anonymous callers share one scope and choose their own ids: reading it back would leak.
          writeError(
            res,
            new GatewayError(
              'GW_UNAUTHORIZED',
              `sessions are read by their owner: send the "${options.principalHeader}" header`,
            ),
          );
        } else session(req, id, res);
      }
      return true;
    }
    return false;
  };

  const session = (req: IncomingMessage, id: string, res: ServerResponse) => {
    transcripts!.history(scopedSession(req, id, options.principalHeader)).then(
      (messages) => {
        const body = JSON.stringify({ object: 'list', session: id, data: messages });
        res
          .writeHead(200, {
            'content-type': 'application/json; charset=utf-8',
            'content-length': Buffer.byteLength(body),
          })
          .end(body);
      },
      (error: unknown) =>
        writeError(
          res,
          new GatewayError('GW_UPSTREAM_UNAVAILABLE', 'transcript store failed', { cause: error }),
        ),
    );
  };

  /** Responses in flight, so that close() can wait for them (the server's own drain does not see raw handlers). */
  const active = new Set<ServerResponse>();
  let drained: (() => void) | undefined;

  async function completions(req: IncomingMessage, res: ServerResponse): Promise<void> {
    active.add(res);
    res.once('close', () => {
      active.delete(res);
      if (active.size === 0) drained?.();
    });
    const ctx = requestContext(req.headers, ROUTE);
    publish(events.requestStart, { ctx, method: 'POST', path: COMPLETIONS, headers: req.headers });
    try {
      if (options.isDraining()) {
        res.shouldKeepAlive = false;
        throw new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down');
      }
      const raw = await readBody(req, config.maxRequestBytes);
      const body = parseBody(raw);
      const model = body.model as string;
      const targets = providers.candidates(model);
      if (targets.length === 0) {
        throw new GatewayError('GW_LLM_NO_PROVIDER', `no provider serves model "${model}"`, {
          data: { model },
        });
      }
      const sessionId = sessionOf(req, body);
      const transcript =
        transcripts !== undefined && sessionId !== undefined
          ? transcripts.start(scopedSession(req, sessionId, options.principalHeader), newTurn(body.messages))
          : undefined;
      await relay(req, res, ctx, raw, body, targets, transcript);
    } catch (error) {
      // An unread request body would poison a kept-alive connection: close it after this reply.
      if (!req.readableEnded) res.shouldKeepAlive = false;
      const failure = writeError(res, error, ctx.id);
      publish(events.requestEnd, {
        ctx,
        method: 'POST',
        path: COMPLETIONS,
        status: failure.status,
        errorCode: failure.code,
        durationMs: performance.now() - ctx.startedAt,
      });
    }
  }

  /** Tries each target until one sends a first chunk, then relays the rest. Throws only before the first byte. */
  async function relay(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: RequestContext,
    raw: Buffer,
    body: Record<string, unknown>,
    targets: readonly LlmTarget[],
    transcript: Transcript | undefined,
  ): Promise<void> {
    const controller = new AbortController();
    const signal = controller.signal;
    const onClose = () => {
      if (!res.writableFinished) {
        controller.abort(new GatewayError('GW_CLIENT_CLOSED', 'client closed the request'));
      }
    };
    res.once('close', onClose);
    const totalMs = targets[0]!.provider.config.timeouts.total;
    const total = setTimeout(
      () =>
        controller.abort(new GatewayError('GW_UPSTREAM_TIMEOUT', `no complete reply within ${totalMs} ms`)),
      totalMs,
    );
    let streaming = false;
    const headers = upstreamHeaders(req, ctx.id);
    const model = body.model as string;
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
          ctx,
          upstream: target.provider.name,
          method: 'POST',
          path: '/chat/completions',
          headers,
          body: rewriteModel(raw, body, model, target.model),
          idempotent: true,
          principal: undefined,
          signal,
        };
        let reply: Reply;
        try {
          reply = await target.provider.handler(call);
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
          relayStream(res, ctx, reply, stream, first, target, transcript, total, onClose);
          return;
        }
        if (isProviderFault(reply.status)) {
          discard(reply);
          lastError = statusError(reply, target);
          continue;
        }
        // Any other 4xx is about the client's request: relay the provider's answer as is.
        streaming = true;
        stream.pause();
        relayStream(res, ctx, reply, stream, null, target, undefined, total, onClose);
        transcript?.end(false);
        return;
      }
      throw lastError;
    } finally {
      if (!streaming) {
        clearTimeout(total);
        res.off('close', onClose);
        transcript?.end(false);
      }
    }
  }

  /** Writes headers and the first chunk, then every further chunk as it arrives, with backpressure. */
  function relayStream(
    res: ServerResponse,
    ctx: RequestContext,
    reply: Reply,
    stream: Readable,
    first: Buffer | null,
    target: LlmTarget,
    transcript: Transcript | undefined,
    total: NodeJS.Timeout,
    onClose: () => void,
  ): void {
    const provider = target.provider.name;
    const headers = stripHopByHop(reply.headers);
    const contentType = String(headers['content-type'] ?? '');
    const sse = contentType.includes('text/event-stream');
    if (sse) headers['x-accel-buffering'] = 'no';
    headers['x-request-id'] = ctx.id;
    res.writeHead(reply.status, headers as OutgoingHttpHeaders);
    let tap: SseContentTap | undefined;
    let kept: Buffer[] | undefined;
    let keptBytes = 0;
    if (transcript !== undefined) {
      if (sse) tap = new SseContentTap((text) => transcript.append(text));
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
      clearTimeout(total);
      res.off('close', onClose);
      res.off('close', onClientGone);
      if (kept !== undefined && outcome === 'complete') {
        const content = completionContent(Buffer.concat(kept, keptBytes));
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
    const onError = (error: Error) => {
      if (res.destroyed || done) {
        finish('aborted');
        return;
      }
      const failure = bodyError(error, target);
      if (sse && !res.writableEnded) {
        res.end(`event: error\ndata: ${JSON.stringify(failure.toJSON())}\n\n`);
      } else res.destroy(failure);
      finish('error');
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);

    if (first !== null) {
      onData(first);
      publish(events.llmFirstByte, { provider, durationMs: performance.now() - ctx.startedAt });
    }
    // A one-chunk body may have ended (or failed) before these listeners were attached.
    if (stream.errored !== null) onError(stream.errored);
    else if (stream.readableEnded) onEnd();
    publish(events.requestEnd, {
      ctx,
      method: 'POST',
      path: COMPLETIONS,
      status: reply.status,
      errorCode: undefined,
      durationMs: performance.now() - ctx.startedAt,
    });
    stream.resume();
  }

  return {
    handle,
    transcripts,
    warm: () => providers.warm(),
    async close(graceMs = 10_000) {
      const graceEnds = performance.now() + graceMs;
      if (active.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => {
            drained = resolve;
          }),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, graceMs);
          }),
        ]);
        clearTimeout(timer);
        for (const res of active) res.destroy();
      }
      await transcripts?.close(Math.max(FINAL_WRITE_MS, graceEnds - performance.now()));
      await providers.close();
    },
  };
}

function notAllowed(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  writeError(
    res,
    new GatewayError('GW_METHOD_NOT_ALLOWED', `method ${req.method} is not allowed on ${req.url}`),
  );
}

function parseBody(raw: Buffer): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new GatewayError('GW_BAD_REQUEST', 'request body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new GatewayError('GW_BAD_REQUEST', 'request body must be a JSON object');
  }
  const record = body as Record<string, unknown>;
  if (typeof record.model !== 'string' || record.model === '') {
    throw new GatewayError('GW_BAD_REQUEST', '"model" is required');
  }
  return record;
}

/**
 * The key a conversation is stored under: the caller's identity (hashed, never stored in clear) and
 * the conversation id, so one caller can never read another's transcript by guessing its id.
 * Callers without the principal header share one anonymous scope.
 */
function scopedSession(req: IncomingMessage, id: string, principalHeader: string): string {
  const principal = req.headers[principalHeader];
  const identity = Array.isArray(principal) ? principal.join(',') : principal;
  const scope =
    identity === undefined || identity === ''
      ? 'anon'
      : createHash('sha256').update(identity).digest('base64url').slice(0, 22);
  return `${scope}:${id}`;
}

/** The conversation id: the `x-slipstream-session` header, else `metadata.session_id`. */
function sessionOf(req: IncomingMessage, body: Record<string, unknown>): string | undefined {
  const header = req.headers[SESSION_HEADER];
  if (typeof header === 'string' && header !== '') return header.slice(0, 256);
  const id = (body.metadata as { session_id?: unknown } | undefined)?.session_id;
  return typeof id === 'string' && id !== '' ? id.slice(0, 256) : undefined;
}

function upstreamHeaders(req: IncomingMessage, requestId: string): Headers {
  const headers = stripHopByHop(req.headers);
  for (const name of CLIENT_ONLY) delete headers[name];
  headers['content-type'] = 'application/json';
  headers['x-request-id'] = requestId;
  return headers;
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

function statusError(reply: Reply, target: LlmTarget): GatewayError {
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
function bodyError(error: unknown, target: LlmTarget): GatewayError {
  if (error instanceof GatewayError) return error;
  const code = (error as { code?: string }).code;
  if (code === 'UND_ERR_BODY_TIMEOUT') {
    return new GatewayError(
      'GW_UPSTREAM_TIMEOUT',
      `${target.label}: no chunk for ${target.provider.config.timeouts.idle} ms`,
      { cause: error },
    );
  }
  return new GatewayError('GW_UPSTREAM_UNAVAILABLE', `${target.label}: the stream broke`, { cause: error });
}

function abortReason(signal: AbortSignal): GatewayError {
  const reason: unknown = signal.reason;
  return reason instanceof GatewayError
    ? reason
    : new GatewayError('GW_CLIENT_CLOSED', 'client closed the request');
}
