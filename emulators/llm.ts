// An OpenAI-compatible LLM upstream (seed 001): SSE token streams with configurable pacing, faults and usage.
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { parseLatency } from './latency.js';
import type { LatencySampler } from './latency.js';
import { answerConfig, listenCounting, rate, sendJson } from './http-kit.js';

export interface LlmEmulatorOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Time to first token, a latency spec (see `parseLatency`). Default "0ms". */
  ttft?: string;
  /** Gap between tokens, a latency spec. Default "0ms". */
  gap?: string;
  /** Tokens per completion (capped by the request's `max_tokens`). Default 16. */
  tokens?: number;
  /** Fraction (0..1) of completions answered with `errorStatus` before any byte. Default 0. */
  errorRate?: number;
  /** Default 500. */
  errorStatus?: number;
  /** When set, error replies carry `Retry-After` with this many seconds. */
  retryAfterS?: number;
  /** Fraction (0..1) of completions that never answer at all. Default 0. */
  hangRate?: number;
  /** When set, streams stall forever after this many tokens (for idle-timeout tests). */
  hangAfter?: number;
  /** Model ids listed by `GET /v1/models`. Default `["emu-small", "emu-large"]`. */
  models?: string[];
  /** Injectable random source for tests. Default `Math.random`. */
  random?: () => number;
}

/** Counters served at `GET /__emulator/stats`. */
export interface LlmEmulatorStats {
  connections: number;
  openConnections: number;
  /** Completion requests (streaming or not). */
  requests: number;
  inFlight: number;
  maxInFlight: number;
  streams: number;
  /** Streams that sent `[DONE]`. */
  completedStreams: number;
  /** Streams whose client went away before `[DONE]`. */
  abortedStreams: number;
  errors: number;
  hangs: number;
  promptTokens: number;
  completionTokens: number;
  /** The `model` of the latest completion request, as received. */
  lastModel: string | undefined;
}

/** Fields `POST /__emulator/config` may change while running. */
export type LlmEmulatorPatch = Partial<
  Pick<
    LlmEmulatorOptions,
    'ttft' | 'gap' | 'tokens' | 'errorRate' | 'errorStatus' | 'retryAfterS' | 'hangRate' | 'hangAfter'
  >
>;

export interface RunningLlmEmulator {
  readonly url: string;
  readonly port: number;
  stats(): LlmEmulatorStats;
  reset(): void;
  configure(patch: LlmEmulatorPatch): void;
  /**
   * Epoch milliseconds (`performance.timeOrigin + performance.now()`) at which each body chunk of the
   * completion sent with `x-request-id: id` was written: the role chunk, one per token, the finish chunk.
   * Also served at `GET /__emulator/timeline/:id`. The last 256 requests are kept.
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
  retryAfterS: number | undefined;
  hangRate: number;
  hangAfter: number | undefined;
}

const MAX_TIMELINES = 256;

/**
 * Starts the emulator. `POST /v1/chat/completions` streams `chat.completion.chunk` SSE events ending with
 * `data: [DONE]` when `stream: true`, else one `chat.completion`; content is deterministic ("tok0 tok1 ...").
 * Request headers override per request: `x-emulate-ttft`, `x-emulate-gap`, `x-emulate-tokens`,
 * `x-emulate-status`, `x-emulate-retry-after`, `x-emulate-hang: 1`, `x-emulate-hang-after`, and
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
    retryAfterS: options.retryAfterS,
    hangRate: rate(options.hangRate ?? 0, 'hangRate'),
    hangAfter: options.hangAfter,
  };
  const models = options.models ?? ['emu-small', 'emu-large'];
  const zero = (): LlmEmulatorStats => ({
    connections: 0,
    openConnections: 0,
    requests: 0,
    inFlight: 0,
    maxInFlight: 0,
    streams: 0,
    completedStreams: 0,
    abortedStreams: 0,
    errors: 0,
    hangs: 0,
    promptTokens: 0,
    completionTokens: 0,
    lastModel: undefined,
  });
  const stats = zero();
  const sockets = new Set<Socket>();
  const hung = new Set<ServerResponse>();
  const timelines = new Map<string, number[]>();
  const now = () => performance.timeOrigin + performance.now();

  const complete = (req: IncomingMessage, res: ServerResponse, raw: string) => {
    const n = ++stats.requests;
    const header = (name: string) => {
      const value = req.headers[name];
      return typeof value === 'string' ? value : undefined;
    };
    let body: {
      model?: unknown;
      stream?: unknown;
      max_tokens?: unknown;
      messages?: unknown;
      stream_options?: { include_usage?: unknown };
    };
    try {
      body = JSON.parse(raw) as typeof body;
    } catch {
      sendJson(res, 400, { error: { message: 'request body is not JSON', type: 'invalid_request_error' } });
      return;
    }
    const model = typeof body.model === 'string' ? body.model : 'emu-small';
    stats.lastModel = model;
    const promptTokens = Math.ceil(raw.length / 4);
    stats.promptTokens += promptTokens;

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

    const text = header('x-emulate-text');
    const words = text === undefined ? undefined : decodeURIComponent(text).split(/(?= )/);
    const maxTokens = typeof body.max_tokens === 'number' ? body.max_tokens : Infinity;
    const count = Math.min(words?.length ?? Number(header('x-emulate-tokens') ?? state.tokens), maxTokens);
    const piece = (i: number) => words?.[i] ?? tokenText(i);
    const ttftHeader = header('x-emulate-ttft');
    const gapHeader = header('x-emulate-gap');
    const gap = gapHeader === undefined ? state.gap : parseLatency(gapHeader);
    const ttftMs = ttftHeader === undefined ? state.ttft(random) : parseLatency(ttftHeader)(random);
    const hangAfterHeader = header('x-emulate-hang-after');
    const hangAfter = hangAfterHeader === undefined ? state.hangAfter : Number(hangAfterHeader);
    const id = `chatcmpl-emu-${n}`;
    const created = Math.floor(Date.now() / 1000);
    const requestId = header('x-request-id');
    let timeline: number[] | undefined;
    if (requestId !== undefined) {
      timeline = [];
      if (timelines.size >= MAX_TIMELINES) timelines.delete(timelines.keys().next().value!);
      timelines.set(requestId, timeline);
    }

    const start = () => {
      if (header('x-emulate-hang') === '1' || (state.hangRate > 0 && random() < state.hangRate)) {
        stats.hangs++;
        hung.add(res);
        res.once('close', () => hung.delete(res));
        return;
      }
      const forcedStatus = header('x-emulate-status');
      if (forcedStatus !== undefined || (state.errorRate > 0 && random() < state.errorRate)) {
        stats.errors++;
        const status = forcedStatus !== undefined ? Number(forcedStatus) : state.errorStatus;
        const retryAfter = header('x-emulate-retry-after') ?? state.retryAfterS;
        sendJson(
          res,
          status,
          { error: { message: `emulated ${status}`, type: status === 429 ? 'rate_limit' : 'server_error' } },
          retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) },
        );
        finish();
        return;
      }
      const usage = {
        prompt_tokens: promptTokens,
        completion_tokens: count,
        total_tokens: promptTokens + count,
      };
      if (body.stream !== true) {
        let content = '';
        for (let i = 0; i < count; i++) content += piece(i);
        stats.completionTokens += count;
        sendJson(res, 200, {
          id,
          object: 'chat.completion',
          created,
          model,
          choices: [
            { index: 0, message: { role: 'assistant', content }, finish_reason: 'stop', logprobs: null },
          ],
          usage,
        });
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
      const prefix = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"choices":[{"index":0,"delta":`;
      const write = (delta: string, finishReason: string) => {
        res.write(`${prefix}${delta},"finish_reason":${finishReason}}]}\n\n`);
        timeline?.push(now());
      };
      write('{"role":"assistant","content":""}', 'null');
      const next = (i: number) => {
        if (i === hangAfter) {
          stats.hangs++;
          hung.add(res);
          res.once('close', () => hung.delete(res));
          return;
        }
        if (i < count) {
          write(`{"content":${JSON.stringify(piece(i))}}`, 'null');
          stats.completionTokens++;
          const ms = gap(random);
          if (ms <= 0) next(i + 1);
          else later(ms, () => next(i + 1));
          return;
        }
        write('{}', '"stop"');
        if (body.stream_options?.include_usage === true) {
          res.write(
            `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"choices":[],"usage":${JSON.stringify(usage)}}\n\n`,
          );
        }
        res.end('data: [DONE]\n\n');
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
    if (patch.retryAfterS !== undefined) state.retryAfterS = patch.retryAfterS;
    if (patch.hangRate !== undefined) state.hangRate = rate(patch.hangRate, 'hangRate');
    // `null` in a JSON patch turns hang-after off.
    if (patch.hangAfter !== undefined) state.hangAfter = patch.hangAfter ?? undefined;
  };

  const server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'GET' && (path === '/v1/models' || path === '/models')) {
      req.resume();
      sendJson(res, 200, {
        object: 'list',
        data: models.map((id) => ({ id, object: 'model', created: 0, owned_by: 'emulator' })),
      });
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      if (path.startsWith('/__emulator/')) control(req, res, body);
      else if (req.method === 'POST' && (path === '/v1/chat/completions' || path === '/chat/completions')) {
        complete(req, res, body);
      } else if (req.method === 'HEAD') res.writeHead(204).end();
      else sendJson(res, 404, { error: { message: `no route ${req.method} ${path}`, type: 'not_found' } });
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
    stats: () => ({ ...stats }),
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
