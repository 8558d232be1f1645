// An LLM provider upstream (seed 001): chat completions, Responses, Anthropic Messages and embeddings, with pacing and faults.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { parseLatency } from './latency.js';
import type { LatencySampler } from './latency.js';
import { answerConfig, listenCounting, rate, sendJson } from './http-kit.js';
import { chatSurface } from './llm/chat.js';
import { embeddingInputs, embeddingsReply } from './llm/embeddings.js';
import { messagesSurface } from './llm/messages.js';
import { openaiContextLength, openaiError } from './llm/openai-error.js';
import { responsesSurface } from './llm/responses.js';
import { CONTEXT_TOKENS } from './llm/surface.js';
import type { Generation, Surface } from './llm/surface.js';

export { embeddingOf } from './llm/embeddings.js';

export interface LlmEmulatorOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Time to first token (for embeddings and token counts: time to the reply), a latency spec. Default "0ms". */
  ttft?: string;
  /** Gap between tokens, a latency spec. Default "0ms". */
  gap?: string;
  /** Tokens per completion (capped by the request's `max_tokens` / `max_output_tokens`). Default 16. */
  tokens?: number;
  /** Fraction (0..1) of requests answered with `errorStatus` before any byte. Default 0. */
  errorRate?: number;
  /** Default 500. */
  errorStatus?: number;
  /** The message of injected errors. Default `emulated <status>`. */
  errorMessage?: string;
  /** When set, error replies carry `Retry-After` with this many seconds. */
  retryAfterS?: number;
  /** Fraction (0..1) of requests that never answer at all. Default 0. */
  hangRate?: number;
  /** When set, streams stall forever after this many tokens (for idle-timeout tests). */
  hangAfter?: number;
  /** Model ids listed by `GET /v1/models`. Default `["emu-small", "emu-large"]`. */
  models?: string[];
  /**
   * When set, every request must carry this key as the real APIs want it: `Authorization: Bearer` on the
   * OpenAI surfaces, `x-api-key` (or a Bearer token) on the Anthropic ones; else 401 in the surface's shape.
   */
  apiKey?: string;
  /** Anthropic surfaces answer 400 without an `anthropic-version` header, as the real API does. Default true. */
  requireAnthropicVersion?: boolean;
  /** Embedding length when the request sets no `dimensions`. Default 32. */
  dimensions?: number;
  /** Injectable random source for tests. Default `Math.random`. */
  random?: () => number;
}

/** The emulator's surfaces, as counted in its stats. */
export type LlmSurfaceName = 'chat' | 'responses' | 'messages' | 'countTokens' | 'embeddings';

/** Per-surface counters. */
export interface LlmSurfaceStats {
  requests: number;
  /** Requests whose client went away before the reply was complete. */
  aborted: number;
}

/** Counters served at `GET /__emulator/stats`. */
export interface LlmEmulatorStats {
  connections: number;
  openConnections: number;
  /** Requests on every surface (completions, responses, messages, token counts, embeddings). */
  requests: number;
  inFlight: number;
  maxInFlight: number;
  streams: number;
  /** Streams that ended normally (`[DONE]`, `response.completed`, `message_stop`). */
  completedStreams: number;
  /** Streams whose client went away before their end. */
  abortedStreams: number;
  /** Requests, streamed or not, whose client went away before the reply was complete. */
  aborted: number;
  /** Error replies: injected faults, and requests refused (bad JSON, missing fields, bad key). */
  errors: number;
  hangs: number;
  promptTokens: number;
  completionTokens: number;
  /** Inputs received by `POST /v1/embeddings`, over all its requests. */
  embeddingInputs: number;
  /** The inputs of each accepted `POST /v1/embeddings` request, in order (the latest 256 requests). */
  embeddingRequests: string[][];
  /** The `model` of the latest request, as received. */
  lastModel: string | undefined;
  /** `GET /v1/responses/:id` requests, found or not. */
  responseReads: number;
  /** The headers of the latest request on a surface, as received (to check what a gateway forwards). */
  lastHeaders: Record<string, string | string[] | undefined>;
  surfaces: Record<LlmSurfaceName, LlmSurfaceStats>;
}

/** Fields `POST /__emulator/config` may change while running. */
export type LlmEmulatorPatch = Partial<
  Pick<
    LlmEmulatorOptions,
    | 'ttft'
    | 'gap'
    | 'tokens'
    | 'errorRate'
    | 'errorStatus'
    | 'errorMessage'
    | 'retryAfterS'
    | 'hangRate'
    | 'hangAfter'
  >
>;

export interface RunningLlmEmulator {
  readonly url: string;
  readonly port: number;
  stats(): LlmEmulatorStats;
  reset(): void;
  configure(patch: LlmEmulatorPatch): void;
  /**
   * Epoch milliseconds (`performance.timeOrigin + performance.now()`) at which each SSE event of the
   * stream sent with `x-request-id: id` was written (events written together share one time): chat's
   * role chunk, one per token and the finish chunk (not the usage chunk nor `[DONE]`); every Responses
   * and Messages event. Also served at `GET /__emulator/timeline/:id`. The last 256 requests are kept.
   */
  timeline(id: string): number[] | undefined;
  /** Ends hung requests, closes every socket and stops listening. */
  close(): Promise<void>;
}

/** The content piece of token `i`: "tok0", " tok1", " tok2"... */
export function tokenText(i: number): string {
  return i === 0 ? 'tok0' : ` tok${i}`;
}

/** The whole reply content for `count` tokens: "tok0 tok1 ... tok{count-1}". */
export function expectedContent(count: number): string {
  let text = '';
  for (let i = 0; i < count; i++) text += tokenText(i);
  return text;
}

interface State {
  ttft: LatencySampler;
  gap: LatencySampler;
  tokens: number;
  errorRate: number;
  errorStatus: number;
  errorMessage: string | undefined;
  retryAfterS: number | undefined;
  hangRate: number;
  hangAfter: number | undefined;
}

/** How a surface says "no": its error body, and its context-length error (`x-emulate-error: context-length`). */
type ErrorShape = Pick<Surface, 'errorBody' | 'contextLengthError'>;

const embeddingsErrors: ErrorShape = {
  errorBody: (status, message) => openaiError(status, message),
  contextLengthError: (tokens) =>
    openaiError(
      400,
      openaiContextLength(tokens + CONTEXT_TOKENS, CONTEXT_TOKENS),
      'context_length_exceeded',
      'input',
    ),
};

const MAX_TIMELINES = 256;
/** Responses kept for `GET /v1/responses/:id` and `previous_response_id` (the oldest go first). */
const MAX_STORED_RESPONSES = 1024;
const MAX_DIMENSIONS = 4096;
const ANTHROPIC = new Set<LlmSurfaceName>(['messages', 'countTokens']);

/**
 * Starts the emulator. Every surface has the same controls (time to first token, gap, token count,
 * errors, hangs, hang-after-N-tokens) and deterministic content ("tok0 tok1 ..."):
 * - `POST /v1/chat/completions`: `chat.completion`, or `chat.completion.chunk` SSE ending `data: [DONE]`
 *   (a usage chunk first with `stream_options.include_usage`);
 * - `POST /v1/responses`: a `response`, or typed SSE events from `response.created` to
 *   `response.completed` (usage in it); `GET /v1/responses/:id` returns responses it made (unless
 *   `store: false`); a `previous_response_id` it did not issue is a 400 `previous_response_not_found`;
 * - `POST /v1/messages` and `/v1/messages/count_tokens`: Anthropic's `message` or SSE events
 *   (`message_start` … `message_stop`, usage in `message_start` and `message_delta`), `{input_tokens}`;
 * - `POST /v1/embeddings`: one deterministic vector per input (see `embeddingOf`), floats or base64; an
 *   input over 8,192 tokens (a quarter of its characters) fails the request with a context-length 400;
 * - `GET /v1/models` and `/v1/models/:id`.
 * Errors are in the surface's own shape. Request headers override per request: `x-emulate-ttft`,
 * `x-emulate-gap`, `x-emulate-tokens`, `x-emulate-status`, `x-emulate-retry-after`,
 * `x-emulate-error-message` (URL-encoded), `x-emulate-error: context-length` (a 400 with the provider's
 * context-length error in the surface's words), `x-emulate-hang: 1`, `x-emulate-hang-after`, and
 * `x-emulate-text` (URL-encoded; its words become the tokens, to exercise JSON escapes).
 */
export async function startLlmEmulator(options: LlmEmulatorOptions = {}): Promise<RunningLlmEmulator> {
  const random = options.random ?? Math.random;
  const state: State = {
    ttft: parseLatency(options.ttft ?? '0ms'),
    gap: parseLatency(options.gap ?? '0ms'),
    tokens: options.tokens ?? 16,
    errorRate: rate(options.errorRate ?? 0, 'errorRate'),
    errorStatus: options.errorStatus ?? 500,
    errorMessage: options.errorMessage,
    retryAfterS: options.retryAfterS,
    hangRate: rate(options.hangRate ?? 0, 'hangRate'),
    hangAfter: options.hangAfter,
  };
  const models = options.models ?? ['emu-small', 'emu-large'];
  const apiKey = options.apiKey;
  const requireVersion = options.requireAnthropicVersion ?? true;
  const defaultDimensions = options.dimensions ?? 32;
  // Ids carry a per-instance tag: another emulator's response ids are unknown here, as across providers.
  const instance = randomBytes(6).toString('hex');
  const zero = (): LlmEmulatorStats => ({
    connections: 0,
    openConnections: 0,
    requests: 0,
    inFlight: 0,
    maxInFlight: 0,
    streams: 0,
    completedStreams: 0,
    abortedStreams: 0,
    aborted: 0,
    errors: 0,
    hangs: 0,
    promptTokens: 0,
    completionTokens: 0,
    embeddingInputs: 0,
    embeddingRequests: [],
    lastModel: undefined,
    lastHeaders: {},
    responseReads: 0,
    surfaces: {
      chat: { requests: 0, aborted: 0 },
      responses: { requests: 0, aborted: 0 },
      messages: { requests: 0, aborted: 0 },
      countTokens: { requests: 0, aborted: 0 },
      embeddings: { requests: 0, aborted: 0 },
    },
  });
  const stats = zero();
  const sockets = new Set<Socket>();
  const hung = new Set<ServerResponse>();
  const timelines = new Map<string, number[]>();
  const stored = new Map<string, unknown>();
  let generated = 0;
  const now = () => performance.timeOrigin + performance.now();

  const refuse = (res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>) => {
    stats.errors++;
    sendJson(res, status, body, headers);
  };

  /** The credential and version checks the real APIs make before reading a body; true when refused. */
  const refused = (req: IncomingMessage, res: ServerResponse, kind: LlmSurfaceName): boolean => {
    const anthropic = ANTHROPIC.has(kind);
    if (apiKey !== undefined) {
      if (anthropic) {
        // API keys come as `x-api-key` (Claude Code, older SDKs) or as a Bearer token (@anthropic-ai/sdk 1.x).
        const bearer = req.headers.authorization?.startsWith('Bearer ')
          ? req.headers.authorization.slice(7)
          : undefined;
        const given = req.headers['x-api-key'] ?? bearer;
        if (given !== apiKey) {
          refuse(
            res,
            401,
            messagesSurface.errorBody(
              401,
              given === undefined ? 'x-api-key header is required' : 'invalid x-api-key',
            ),
          );
          return true;
        }
      } else if (req.headers.authorization !== `Bearer ${apiKey}`) {
        const message =
          req.headers.authorization === undefined
            ? "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            : 'Incorrect API key provided.';
        refuse(res, 401, openaiError(401, message));
        return true;
      }
    }
    if (anthropic && requireVersion && req.headers['anthropic-version'] === undefined) {
      refuse(res, 400, messagesSurface.errorBody(400, 'anthropic-version: header is required'));
      return true;
    }
    return false;
  };

  /** Field checks the real APIs make; returns the complaint, with the OpenAI `code`/`param` when it has them. */
  const invalid = (
    kind: LlmSurfaceName,
    body: Record<string, unknown>,
  ): { message: string; code?: string; param?: string } | undefined => {
    if (kind === 'chat') return undefined; // as before: a missing model is "emu-small"
    if (typeof body.model !== 'string' || body.model === '') {
      return ANTHROPIC.has(kind)
        ? { message: 'model: Field required' }
        : {
            message: "Missing required parameter: 'model'.",
            code: 'missing_required_parameter',
            param: 'model',
          };
    }
    if (kind === 'messages' && typeof body.max_tokens !== 'number')
      return { message: 'max_tokens: Field required' };
    if (ANTHROPIC.has(kind) && !Array.isArray(body.messages)) return { message: 'messages: Field required' };
    if (
      kind === 'responses' &&
      body.previous_response_id !== undefined &&
      body.previous_response_id !== null
    ) {
      const id = body.previous_response_id;
      if (typeof id !== 'string' || !stored.has(id)) {
        return {
          message: `Previous response with id ${typeof id === 'string' ? `'${id}'` : JSON.stringify(id)} not found.`,
          code: 'previous_response_not_found',
          param: 'previous_response_id',
        };
      }
    }
    if (kind === 'embeddings') {
      const texts = embeddingInputs(body.input);
      if (typeof texts === 'string') return { message: texts, param: 'input' };
      // As the real API: any one input over the model's context fails the whole request.
      const longest = Math.max(...texts.map((text) => Math.ceil(text.length / 4)));
      if (longest > CONTEXT_TOKENS) {
        return {
          message: openaiContextLength(longest, CONTEXT_TOKENS),
          code: 'context_length_exceeded',
          param: 'input',
        };
      }
      const { dimensions, encoding_format: format } = body;
      if (
        dimensions !== undefined &&
        !(
          typeof dimensions === 'number' &&
          Number.isInteger(dimensions) &&
          dimensions >= 1 &&
          dimensions <= MAX_DIMENSIONS
        )
      ) {
        return {
          message: `'dimensions' must be an integer from 1 to ${MAX_DIMENSIONS}`,
          param: 'dimensions',
        };
      }
      if (format !== undefined && format !== 'float' && format !== 'base64') {
        return { message: "'encoding_format' must be 'float' or 'base64'", param: 'encoding_format' };
      }
    }
    return undefined;
  };

  /** Input tokens: chat counts its raw body (as it always has); the others count the conversation itself. */
  const promptTokensOf = (kind: LlmSurfaceName, raw: string, body: Record<string, unknown>): number => {
    if (kind === 'chat') return Math.ceil(raw.length / 4);
    if (kind === 'responses') return Math.ceil(JSON.stringify([body.instructions, body.input]).length / 4);
    if (kind === 'embeddings') return 0; // counted per input by the reply
    return Math.ceil(JSON.stringify([body.system, body.messages, body.tools]).length / 4);
  };

  const generate = (kind: LlmSurfaceName, req: IncomingMessage, res: ServerResponse, raw: string) => {
    stats.requests++;
    // Ids never repeat, not even after a stats reset (stored responses outlive it).
    const n = ++generated;
    stats.lastHeaders = { ...req.headers };
    const counters = stats.surfaces[kind];
    counters.requests++;
    res.once('close', () => {
      if (!res.writableFinished) {
        stats.aborted++;
        counters.aborted++;
      }
    });
    const surface: ErrorShape =
      kind === 'embeddings'
        ? embeddingsErrors
        : kind === 'chat'
          ? chatSurface
          : kind === 'responses'
            ? responsesSurface
            : messagesSurface;
    if (refused(req, res, kind)) return;
    const header = (name: string) => {
      const value = req.headers[name];
      return typeof value === 'string' ? value : undefined;
    };
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object');
      body = parsed as Record<string, unknown>;
    } catch {
      refuse(res, 400, surface.errorBody(400, 'request body is not a JSON object'));
      return;
    }
    const problem = invalid(kind, body);
    if (problem !== undefined) {
      refuse(
        res,
        400,
        ANTHROPIC.has(kind)
          ? surface.errorBody(400, problem.message)
          : openaiError(400, problem.message, problem.code, problem.param),
      );
      return;
    }
    const model = typeof body.model === 'string' ? body.model : 'emu-small';
    stats.lastModel = model;
    const promptTokens = promptTokensOf(kind, raw, body);
    stats.promptTokens += promptTokens;
    const texts = kind === 'embeddings' ? (embeddingInputs(body.input) as string[]) : [];
    stats.embeddingInputs += texts.length;
    if (kind === 'embeddings') {
      if (stats.embeddingRequests.length >= MAX_TIMELINES) stats.embeddingRequests.shift();
      stats.embeddingRequests.push(texts);
    }

    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    const timers = new Set<NodeJS.Timeout>();
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        stats.inFlight--;
      }
    };
    res.once('close', () => {
      for (const timer of timers) clearTimeout(timer);
      finish();
    });
    const later = (ms: number, fn: () => void) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        fn();
      }, ms);
      timers.add(timer);
    };
    const hang = () => {
      stats.hangs++;
      hung.add(res);
      res.once('close', () => hung.delete(res));
    };

    const text = header('x-emulate-text');
    const words = text === undefined ? undefined : decodeURIComponent(text).split(/(?= )/);
    const cap = body.max_tokens ?? body.max_completion_tokens ?? body.max_output_tokens;
    const maxTokens = typeof cap === 'number' ? cap : Infinity;
    const count = Math.min(words?.length ?? Number(header('x-emulate-tokens') ?? state.tokens), maxTokens);
    const piece = (i: number) => words?.[i] ?? tokenText(i);
    const ttftHeader = header('x-emulate-ttft');
    const gapHeader = header('x-emulate-gap');
    const gap = gapHeader === undefined ? state.gap : parseLatency(gapHeader);
    const ttftMs = ttftHeader === undefined ? state.ttft(random) : parseLatency(ttftHeader)(random);
    const hangAfterHeader = header('x-emulate-hang-after');
    const hangAfter = hangAfterHeader === undefined ? state.hangAfter : Number(hangAfterHeader);
    const gen: Generation = {
      id:
        kind === 'chat'
          ? `chatcmpl-emu-${n}`
          : kind === 'responses'
            ? `resp_${instance}_${n}`
            : `msg_${instance}_${n}`,
      model,
      created: Math.floor(Date.now() / 1000),
      count,
      piece,
      promptTokens,
      body,
    };
    const requestId = header('x-request-id');
    let timeline: number[] | undefined;
    if (requestId !== undefined) {
      timeline = [];
      if (timelines.size >= MAX_TIMELINES) timelines.delete(timelines.keys().next().value!);
      timelines.set(requestId, timeline);
    }
    const store = (reply: string) => {
      if (kind !== 'responses' || body.store === false) return;
      if (stored.size >= MAX_STORED_RESPONSES) stored.delete(stored.keys().next().value!);
      stored.set(gen.id, responsesSurface.reply(gen, reply));
    };

    const start = () => {
      if (header('x-emulate-hang') === '1' || (state.hangRate > 0 && random() < state.hangRate)) {
        hang();
        return;
      }
      if (header('x-emulate-error') === 'context-length') {
        refuse(res, 400, surface.contextLengthError(promptTokens));
        finish();
        return;
      }
      const forcedStatus = header('x-emulate-status');
      if (forcedStatus !== undefined || (state.errorRate > 0 && random() < state.errorRate)) {
        const status = forcedStatus !== undefined ? Number(forcedStatus) : state.errorStatus;
        const retryAfter = header('x-emulate-retry-after') ?? state.retryAfterS;
        const messageHeader = header('x-emulate-error-message');
        const message = messageHeader === undefined ? state.errorMessage : decodeURIComponent(messageHeader);
        refuse(
          res,
          status,
          surface.errorBody(status, message ?? `emulated ${status}`),
          retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) },
        );
        finish();
        return;
      }
      if (kind === 'embeddings') {
        const dimensions = typeof body.dimensions === 'number' ? body.dimensions : defaultDimensions;
        sendJson(res, 200, embeddingsReply(texts, model, dimensions, body.encoding_format === 'base64'));
        finish();
        return;
      }
      if (kind === 'countTokens') {
        sendJson(res, 200, { input_tokens: promptTokens });
        finish();
        return;
      }
      const wire = surface as Surface;
      if (body.stream !== true) {
        let content = '';
        for (let i = 0; i < count; i++) content += piece(i);
        stats.completionTokens += count;
        store(content);
        sendJson(res, 200, wire.reply(gen, content));
        finish();
        return;
      }
      stats.streams++;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
      });
      res.once('close', () => {
        if (!res.writableFinished) stats.abortedStreams++;
      });
      const includeUsage =
        (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
      const stream = wire.stream(gen, includeUsage);
      const mark = (events: number) => {
        if (timeline === undefined) return;
        const at = now();
        for (let e = 0; e < events; e++) timeline.push(at);
      };
      res.write(stream.head);
      mark(stream.headEvents);
      let content = '';
      const next = (i: number) => {
        if (i === hangAfter) {
          hang();
          return;
        }
        if (i < count) {
          const p = piece(i);
          content += p;
          res.write(stream.token(p));
          mark(1);
          stats.completionTokens++;
          const ms = gap(random);
          if (ms <= 0) next(i + 1);
          else later(ms, () => next(i + 1));
          return;
        }
        store(content);
        res.end(stream.tail(content));
        mark(stream.tailEvents);
        stats.completedStreams++;
        finish();
      };
      next(0);
    };
    if (ttftMs <= 0) start();
    else later(ttftMs, start);
  };

  const control = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const path = (req.url ?? '').split('?')[0]!;
    if (req.method === 'GET' && path === '/__emulator/stats') return sendJson(res, 200, stats);
    if (req.method === 'GET' && path.startsWith('/__emulator/timeline/')) {
      const timeline = timelines.get(decodeURIComponent(path.slice('/__emulator/timeline/'.length)));
      return timeline === undefined
        ? sendJson(res, 404, { error: 'no such request id' })
        : sendJson(res, 200, timeline);
    }
    if (req.method === 'POST' && path === '/__emulator/reset') {
      reset();
      return sendJson(res, 200, { ok: true });
    }
    if (req.method === 'POST' && path === '/__emulator/config') return answerConfig(res, body, configure);
    return sendJson(res, 404, { error: `no emulator endpoint ${req.method} ${path}` });
  };

  const reset = () => {
    Object.assign(stats, { ...zero(), openConnections: stats.openConnections, inFlight: stats.inFlight });
    timelines.clear();
  };

  const configure = (patch: LlmEmulatorPatch) => {
    if (patch.ttft !== undefined) state.ttft = parseLatency(patch.ttft);
    if (patch.gap !== undefined) state.gap = parseLatency(patch.gap);
    if (patch.tokens !== undefined) state.tokens = patch.tokens;
    if (patch.errorRate !== undefined) state.errorRate = rate(patch.errorRate, 'errorRate');
    if (patch.errorStatus !== undefined) state.errorStatus = patch.errorStatus;
    // `null` in a JSON patch turns the custom message (and hang-after, below) off.
    if (patch.errorMessage !== undefined) state.errorMessage = patch.errorMessage ?? undefined;
    if (patch.retryAfterS !== undefined) state.retryAfterS = patch.retryAfterS;
    if (patch.hangRate !== undefined) state.hangRate = rate(patch.hangRate, 'hangRate');
    if (patch.hangAfter !== undefined) state.hangAfter = patch.hangAfter ?? undefined;
  };

  /** Answers the GET endpoints; false when `path` is none of them. */
  const get = (res: ServerResponse, path: string): boolean => {
    if (path === '/models') {
      sendJson(res, 200, {
        object: 'list',
        data: models.map((id) => ({ id, object: 'model', created: 0, owned_by: 'emulator' })),
      });
      return true;
    }
    if (path.startsWith('/models/')) {
      const id = decodeURIComponent(path.slice('/models/'.length));
      if (models.includes(id)) sendJson(res, 200, { id, object: 'model', created: 0, owned_by: 'emulator' });
      else {
        refuse(
          res,
          404,
          openaiError(
            404,
            `The model '${id}' does not exist or you do not have access to it.`,
            'model_not_found',
          ),
        );
      }
      return true;
    }
    if (path.startsWith('/responses/')) {
      stats.responseReads++;
      const id = decodeURIComponent(path.slice('/responses/'.length));
      const found = stored.get(id);
      if (found !== undefined) sendJson(res, 200, found);
      else refuse(res, 404, openaiError(404, `Response with id '${id}' not found.`));
      return true;
    }
    return false;
  };

  /** POST paths (after an optional `/v1`) → surfaces. */
  const surfaces = new Map<string, LlmSurfaceName>([
    ['/chat/completions', 'chat'],
    ['/responses', 'responses'],
    ['/messages', 'messages'],
    ['/messages/count_tokens', 'countTokens'],
    ['/embeddings', 'embeddings'],
  ]);

  const server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    const full = (req.url ?? '/').split('?')[0]!;
    const path = full.startsWith('/v1/') ? full.slice(3) : full;
    if (req.method === 'GET' && get(res, path)) {
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const kind = req.method === 'POST' ? surfaces.get(path) : undefined;
      if (full.startsWith('/__emulator/')) control(req, res, body);
      else if (kind !== undefined) generate(kind, req, res, body);
      else if (req.method === 'HEAD') res.writeHead(204).end();
      else sendJson(res, 404, { error: { message: `no route ${req.method} ${full}`, type: 'not_found' } });
    });
  });
  const { port, host } = await listenCounting(
    server,
    { host: options.host, port: options.port },
    stats,
    sockets,
  );

  return {
    url: `http://${host}:${port}`,
    port,
    stats: () => structuredClone(stats),
    reset,
    configure,
    timeline: (id) => timelines.get(id),
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hung) res.destroy();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
