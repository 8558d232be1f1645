// The real SDKs through Slipstream against the LLM emulator: every surface, with 429s, 400s, hangs, aborts and fallbacks.
import { connect } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import { ContextOverflowError } from '@langchain/core/errors';
import { APICallError, generateText, streamText } from 'ai';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { embeddingOf, expectedContent, startLlmEmulator } from '../../emulators/llm.js';
import type { LlmSurfaceName, RunningLlmEmulator } from '../../emulators/llm.js';
import { startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import {
  aiSdkOpenAI,
  anthropicClient,
  langchainChat,
  openaiClient,
  TEST_API_KEY,
} from '../helpers/llm-clients.js';

const TOKENS = 4;
const CONTENT = expectedContent(TOKENS);
/** The provider's own key: the primary emulator refuses any other (so a client key relayed would fail). */
const PROVIDER_KEY = 'sk-provider-key';
/** Every provider answers 429 with `Retry-After: 7` (longer than the retry's maxDelay: no gateway retry). */
const RATE_LIMITED = { 'x-emulate-status': '429', 'x-emulate-retry-after': '7' };
/** A 400 with the provider's context-length error. */
const REFUSED = { 'x-emulate-error': 'context-length' };
/** A stream that stalls after one token: the gateway's idle deadline (500 ms) or the client must end it. */
const STALLS = { 'x-emulate-hang-after': '1' };
const user = [{ role: 'user' as const, content: 'hello' }];
const claude = { model: 'sonnet', max_tokens: 100, messages: user };

let primary: RunningLlmEmulator;
let secondary: RunningLlmEmulator;
let gw: RunningGateway;

beforeAll(async () => {
  primary = await startLlmEmulator({ tokens: TOKENS, apiKey: PROVIDER_KEY });
  secondary = await startLlmEmulator({ tokens: TOKENS });
  const resilient = `timeouts: { idle: 500ms }
      retry: { attempts: 2, baseDelay: 5ms, maxDelay: 1s }
      breaker: false`;
  gw = await startGateway(
    `
upstreams: {}
llm:
  providers:
    one:
      baseUrl: ${primary.url}/v1
      apiKey: \${KEY}
      models: { fast: emu-small, embed: emu-embed }
      ${resilient}
    two:
      baseUrl: ${secondary.url}/v1
      models: { backup: emu-backup }
      ${resilient}
    claude:
      type: anthropic
      baseUrl: ${primary.url}/v1
      apiKey: \${KEY}
      models: { sonnet: claude-emu }
      ${resilient}
    claude-two:
      type: anthropic
      baseUrl: ${secondary.url}/v1
      models: { sonnet-backup: claude-backup }
      ${resilient}
  fallbacks:
    fast: [backup]
    sonnet: [sonnet-backup]
`,
    { KEY: PROVIDER_KEY },
  );
});

afterAll(async () => {
  await gw?.close();
  await primary?.close();
  await secondary?.close();
});

beforeEach(() => {
  const healthy = {
    errorRate: 0,
    hangRate: 0,
    hangAfter: undefined,
    gap: '0ms',
    ttft: '0ms',
    tokens: TOKENS,
  };
  for (const emulator of [primary, secondary]) {
    emulator.configure(healthy);
    emulator.reset();
  }
});

/** The error a call rejects with (fails the test when it resolves). */
async function failure(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to fail');
}

/** Waits until the primary emulator saw the client leave one request on `surface`. */
async function abortSeen(surface: LlmSurfaceName): Promise<void> {
  await expect.poll(() => primary.stats().surfaces[surface].aborted, { timeout: 10_000 }).toBe(1);
}

/** Writes `request` on a raw socket; resolves with the response head and body once the server closes. */
function rawExchange(origin: string, request: string): Promise<{ head: string; body: string }> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(request));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const at = text.indexOf('\r\n\r\n');
      resolve({ head: text.slice(0, at), body: text.slice(at + 4) });
    });
  });
}

/** The primary provider answers 500 to everything: requests must fall back to the secondary. */
function primaryDown(): void {
  primary.configure({ errorRate: 1, errorStatus: 500 });
}

describe('the openai SDK through Slipstream', () => {
  const client = (maxRetries = 0) => openaiClient(gw.url, { maxRetries });

  it("creates chat completions, streamed and not, sending the provider's key and never the client's", async () => {
    const reply = await client().chat.completions.create({ model: 'fast', messages: user });
    expect(reply.choices[0]!.message.content).toBe(CONTENT);
    expect(primary.stats().lastHeaders.authorization).toBe(`Bearer ${PROVIDER_KEY}`);
    const stream = await client().chat.completions.create({
      model: 'fast',
      messages: user,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe(CONTENT);
    expect(usage?.completion_tokens).toBe(TOKENS);
    expect(primary.stats()).toMatchObject({ errors: 0, lastModel: 'emu-small' });
    expect(JSON.stringify(primary.stats().lastHeaders)).not.toContain(TEST_API_KEY);
  });

  it('creates responses, streamed and not, retrieves one and chains another with previous_response_id', async () => {
    const first = await client().responses.create({ model: 'fast', input: 'hello' });
    expect(first.output_text).toBe(CONTENT);
    expect(first.usage?.output_tokens).toBe(TOKENS);
    const helper = client().responses.stream({ model: 'fast', input: 'hello' });
    let deltas = '';
    helper.on('response.output_text.delta', (event) => (deltas += event.delta));
    expect((await helper.finalResponse()).output_text).toBe(CONTENT);
    expect(deltas).toBe(CONTENT);
    expect((await client().responses.retrieve(first.id)).output_text).toBe(CONTENT);
    const next = await client().responses.create({
      model: 'fast',
      input: 'more',
      previous_response_id: first.id,
    });
    expect(next.previous_response_id).toBe(first.id);
    expect(primary.stats()).toMatchObject({
      errors: 0,
      responseReads: 1,
      surfaces: { responses: { requests: 3 } },
    });
  });

  it('creates embeddings (base64 by default, floats when asked) and retrieves models', async () => {
    const decoded = await client().embeddings.create({ model: 'embed', input: ['alpha', 'beta'] });
    expect(decoded.data.map((d) => d.embedding)).toEqual([embeddingOf('alpha', 32), embeddingOf('beta', 32)]);
    const floats = await client().embeddings.create({
      model: 'embed',
      input: 'gamma',
      dimensions: 8,
      encoding_format: 'float',
    });
    expect(floats.data[0]!.embedding).toEqual(embeddingOf('gamma', 8));
    expect(floats.model).toBe('emu-embed');
    expect((await client().models.retrieve('fast')).owned_by).toBe('one');
    expect((await client().models.retrieve('backup')).owned_by).toBe('two');
    expect(await failure(() => client().models.retrieve('constructor'))).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('raises RateLimitError with Retry-After when every provider answers 429, on chat, Responses and embeddings', async () => {
    const options = { headers: RATE_LIMITED };
    const calls = [
      () => client().chat.completions.create({ model: 'fast', messages: user }, options),
      () => client().responses.create({ model: 'fast', input: 'x' }, options),
      () => client().embeddings.create({ model: 'embed', input: 'rate-limited' }, options),
    ];
    for (const run of calls) {
      const error = await failure(run);
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      const api = error as InstanceType<typeof OpenAI.RateLimitError>;
      expect(api.headers?.get('retry-after')).toBe('7');
      expect(api.code).toBe('GW_UPSTREAM_RATE_LIMITED');
      expect(api.message).toContain('emulated 429');
    }
  });

  it("relays the provider's 400 as it is, on chat, Responses and embeddings, without trying the fallback", async () => {
    const options = { headers: REFUSED };
    const calls = [
      () => client().chat.completions.create({ model: 'fast', messages: user }, options),
      () => client().responses.create({ model: 'fast', input: 'x' }, options),
      () => client().embeddings.create({ model: 'embed', input: 'too long' }, options),
    ];
    for (const run of calls) {
      const error = await failure(run);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error.message).toContain('maximum context length is 8192 tokens');
      expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe('context_length_exceeded');
    }
    expect(secondary.stats().requests).toBe(0);
  });

  it("answers 502 with the provider's message once fallbacks are exhausted, and tells the SDK not to retry again", async () => {
    const error = await failure(() =>
      client(2).chat.completions.create(
        { model: 'fast', messages: user },
        { headers: { 'x-emulate-status': '503', 'x-emulate-error-message': 'upstream%20melted' } },
      ),
    );
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(error.message).toContain('502 two/emu-backup answered 503: upstream melted');
    expect((error as InstanceType<typeof OpenAI.APIError>).headers?.get('x-should-retry')).toBe('false');
    // The gateway's own attempts (2 on each provider) and no more: the SDK's 2 retries did not multiply them.
    expect(primary.stats().requests + secondary.stats().requests).toBe(4);
  });

  it('ends a stalled chat stream and a stalled Responses stream with their own error events', async () => {
    const chat = await client().chat.completions.create(
      { model: 'fast', messages: user, stream: true },
      { headers: STALLS },
    );
    let text = '';
    const broken = await failure(async () => {
      for await (const chunk of chat) text += chunk.choices[0]?.delta.content ?? '';
    });
    expect(text).toBe('tok0');
    expect(broken).toBeInstanceOf(OpenAI.APIError);
    expect((broken as InstanceType<typeof OpenAI.APIError>).code).toBe('GW_UPSTREAM_TIMEOUT');
    const responses = await client().responses.create(
      { model: 'fast', input: 'x', stream: true },
      { headers: STALLS },
    );
    let deltas = '';
    const ended = await failure(async () => {
      for await (const event of responses)
        if (event.type === 'response.output_text.delta') deltas += event.delta;
    });
    expect(deltas).toBe('tok0');
    expect((ended as InstanceType<typeof OpenAI.APIError>).code).toBe('GW_UPSTREAM_TIMEOUT');
    expect(ended.message).toContain('no chunk for 500 ms');
    expect(secondary.stats().requests).toBe(0);
  });

  it('aborts the provider request when the client aborts a chat stream or a Responses stream', async () => {
    const controller = new AbortController();
    const chat = await client().chat.completions.create(
      { model: 'fast', messages: user, stream: true },
      { headers: STALLS, signal: controller.signal },
    );
    for await (const chunk of chat) if (chunk.choices[0]?.delta.content === 'tok0') controller.abort();
    await abortSeen('chat');
    const responses = await client().responses.create(
      { model: 'fast', input: 'x', stream: true },
      { headers: STALLS },
    );
    for await (const event of responses) if (event.type === 'response.output_text.delta') break;
    await abortSeen('responses');
  });

  it('falls back before the first byte on chat, Responses and embeddings', async () => {
    primaryDown();
    const stream = await client().chat.completions.create({ model: 'fast', messages: user, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(CONTENT);
    expect(secondary.stats().lastModel).toBe('emu-backup');
    const response = await client().responses.stream({ model: 'fast', input: 'x' }).finalResponse();
    expect(response.output_text).toBe(CONTENT);
    expect(secondary.stats().surfaces).toMatchObject({ chat: { requests: 1 }, responses: { requests: 1 } });
  });
});

describe('previous_response_id and GET /v1/responses/:id through Slipstream', () => {
  const client = () => openaiClient(gw.url);

  it('sends a chained request and a retrieval to the provider that made the response, never to the first one', async () => {
    primaryDown();
    const first = await client().responses.create({ model: 'fast', input: 'hello' });
    expect(secondary.stats().surfaces.responses.requests).toBe(1); // a fallback made it
    primary.configure({ errorRate: 0 });
    primary.reset();
    const next = await client().responses.create({
      model: 'fast',
      input: 'more',
      previous_response_id: first.id,
    });
    expect(next.previous_response_id).toBe(first.id);
    expect((await client().responses.retrieve(first.id)).id).toBe(first.id);
    expect(primary.stats()).toMatchObject({ requests: 0, responseReads: 0 });
    expect(secondary.stats()).toMatchObject({ responseReads: 1, surfaces: { responses: { requests: 2 } } });
  });

  it('never falls back for a chained request: a failing owner is an error, not a new conversation elsewhere', async () => {
    const first = await client().responses.create({ model: 'fast', input: 'hello' });
    primaryDown();
    const error = await failure(() =>
      client().responses.create({ model: 'fast', input: 'more', previous_response_id: first.id }),
    );
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe('GW_UPSTREAM_UNAVAILABLE');
    expect(secondary.stats().requests).toBe(0);
  });

  it('finds a response it never relayed by asking each provider in turn, and relays the last 404', async () => {
    const made = await openaiClient(secondary.url).responses.create({ model: 'emu-backup', input: 'direct' });
    expect((await client().responses.retrieve(made.id)).id).toBe(made.id);
    expect(primary.stats().responseReads).toBe(1);
    expect(secondary.stats().responseReads).toBe(1);
    const missing = await failure(() => client().responses.retrieve('resp_nobody_1'));
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect(missing.message).toContain("Response with id 'resp_nobody_1' not found.");
  });

  it('answers a WebSocket upgrade on /v1/responses with 426 at once, and closes the connection', async () => {
    const { head, body } = await rawExchange(
      gw.url,
      'GET /v1/responses HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(head).toMatch(/^HTTP\/1\.1 426 /);
    expect(head.toLowerCase()).toContain('connection: close');
    expect((JSON.parse(body) as { error: { code: string } }).error.code).toBe('GW_WEBSOCKET_UNSUPPORTED');
    expect(primary.stats().requests).toBe(0);
  });
});

describe('the Anthropic SDK through Slipstream', () => {
  const client = () => anthropicClient(gw.url);

  it("creates a message, streams one and counts tokens, sending the provider's x-api-key and no Authorization", async () => {
    const message = await client().messages.create(claude);
    expect(message.content).toEqual([{ type: 'text', text: CONTENT }]);
    const stream = client().messages.stream(claude);
    let text = '';
    stream.on('text', (delta) => (text += delta));
    const final = await stream.finalMessage();
    expect(text).toBe(CONTENT);
    expect(final.usage.output_tokens).toBe(TOKENS);
    const counted = await client().messages.countTokens({ model: 'sonnet', messages: user });
    expect(counted.input_tokens).toBe(message.usage.input_tokens);
    const headers = primary.stats().lastHeaders;
    expect(headers['x-api-key']).toBe(PROVIDER_KEY);
    expect(headers.authorization).toBeUndefined();
    expect(headers['anthropic-version']).toBeDefined();
    expect(primary.stats()).toMatchObject({
      errors: 0,
      surfaces: { messages: { requests: 2 }, countTokens: { requests: 1 } },
    });
  });

  it("raises RateLimitError on a 429 and BadRequestError with the provider's message on a 400", async () => {
    const limited = await failure(() => client().messages.create(claude, { headers: RATE_LIMITED }));
    expect(limited).toBeInstanceOf(Anthropic.RateLimitError);
    const api = limited as InstanceType<typeof Anthropic.APIError>;
    expect(api.headers?.get('retry-after')).toBe('7');
    expect(api.type).toBe('rate_limit_error');
    const refused = await failure(() => client().messages.create(claude, { headers: REFUSED }));
    expect(refused).toBeInstanceOf(Anthropic.BadRequestError);
    expect((refused as InstanceType<typeof Anthropic.APIError>).apiMessage).toMatch(
      /prompt is too long: \d+ tokens > 8192 maximum/,
    );
    const counted = await failure(() =>
      client().messages.countTokens({ model: 'sonnet', messages: user }, { headers: RATE_LIMITED }),
    );
    expect(counted).toBeInstanceOf(Anthropic.RateLimitError);
  });

  it('ends a stalled message stream with a named error event of type timeout_error', async () => {
    const stream = client().messages.stream(claude, { headers: STALLS });
    let text = '';
    stream.on('text', (delta) => (text += delta));
    const broken = await failure(() => stream.finalMessage());
    expect(text).toBe('tok0');
    expect(broken).toBeInstanceOf(Anthropic.APIError);
    expect((broken as InstanceType<typeof Anthropic.APIError>).type).toBe('timeout_error');
  });

  it('aborts the provider request when the client aborts a message stream', async () => {
    const stream = client().messages.stream(claude, { headers: STALLS });
    stream.on('text', () => stream.abort());
    await expect(stream.finalMessage()).rejects.toBeInstanceOf(Anthropic.APIUserAbortError);
    await abortSeen('messages');
  });

  it('falls back to the next Anthropic provider before the first byte', async () => {
    primaryDown();
    const stream = client().messages.stream(claude);
    expect((await stream.finalMessage()).content).toEqual([{ type: 'text', text: CONTENT }]);
    expect(secondary.stats()).toMatchObject({
      lastModel: 'claude-backup',
      surfaces: { messages: { requests: 1 } },
    });
  });
});

describe("the AI SDK's default openai(model) provider (Responses) through Slipstream", () => {
  const model = () => aiSdkOpenAI(gw.url)('fast');

  it('generates and streams text with usage', async () => {
    const generated = await generateText({ model: model(), prompt: 'hello', maxRetries: 0 });
    expect(generated.text).toBe(CONTENT);
    expect(generated.usage.outputTokens).toBe(TOKENS);
    const streamed = streamText({ model: model(), prompt: 'hello', maxRetries: 0 });
    let text = '';
    for await (const delta of streamed.textStream) text += delta;
    expect(text).toBe(CONTENT);
    expect((await streamed.usage).outputTokens).toBe(TOKENS);
    expect(primary.stats().surfaces).toMatchObject({ responses: { requests: 2 }, chat: { requests: 0 } });
  });

  it("raises APICallError 429 (retryable) and 400 with the provider's message", async () => {
    const limited = await failure(() =>
      generateText({ model: model(), prompt: 'x', maxRetries: 0, headers: RATE_LIMITED }),
    );
    expect(APICallError.isInstance(limited)).toBe(true);
    expect((limited as APICallError).statusCode).toBe(429);
    expect((limited as APICallError).isRetryable).toBe(true);
    const refused = await failure(() =>
      generateText({ model: model(), prompt: 'x', maxRetries: 0, headers: REFUSED }),
    );
    expect((refused as APICallError).statusCode).toBe(400);
    expect(refused.message).toContain('maximum context length is 8192 tokens');
  });

  it('reports a stalled stream as a stream error after the text before it', async () => {
    const errors: unknown[] = [];
    const streamed = streamText({
      model: model(),
      prompt: 'x',
      maxRetries: 0,
      headers: STALLS,
      onError: ({ error }) => void errors.push(error),
    });
    let text = '';
    for await (const delta of streamed.textStream) text += delta;
    expect(text).toBe('tok0');
    expect(errors).toHaveLength(1);
    expect(String((errors[0] as Error).message)).toContain('no chunk for 500 ms');
  });

  it('aborts the provider request when the caller aborts', async () => {
    const controller = new AbortController();
    const streamed = streamText({
      model: model(),
      prompt: 'x',
      maxRetries: 0,
      headers: STALLS,
      abortSignal: controller.signal,
    });
    for await (const delta of streamed.textStream) if (delta === 'tok0') controller.abort();
    await abortSeen('responses');
  });

  it('falls back before the first byte', async () => {
    primaryDown();
    const streamed = streamText({ model: model(), prompt: 'x', maxRetries: 0 });
    let text = '';
    for await (const delta of streamed.textStream) text += delta;
    expect(text).toBe(CONTENT);
    expect(secondary.stats().lastModel).toBe('emu-backup');
  });
});

describe("LangChain's ChatOpenAI through Slipstream", () => {
  const chat = (headers?: Record<string, string>) => langchainChat(gw.url, 'fast', { headers });

  it('invokes and streams', async () => {
    expect((await chat().invoke('hello')).content).toBe(CONTENT);
    let text = '';
    for await (const chunk of await chat().stream('hello')) text += chunk.text;
    expect(text).toBe(CONTENT);
  });

  it('raises the rate-limit error on a 429 and ContextOverflowError on a context-length 400', async () => {
    const limited = await failure(() => chat(RATE_LIMITED).invoke('x'));
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
    expect((limited as { lc_error_code?: string }).lc_error_code).toBe('MODEL_RATE_LIMIT');
    const refused = await failure(() => chat(REFUSED).invoke('x'));
    expect(refused).toBeInstanceOf(ContextOverflowError);
    expect(refused.message).toContain('maximum context length is 8192 tokens');
  });

  it('fails a stalled stream with the gateway error after the text before it', async () => {
    let text = '';
    const broken = await failure(async () => {
      for await (const chunk of await chat(STALLS).stream('x')) text += chunk.text;
    });
    expect(text).toBe('tok0');
    expect(broken.message).toContain('no chunk for 500 ms');
  });

  it('aborts the provider request when the caller aborts', async () => {
    const controller = new AbortController();
    await expect(
      (async () => {
        for await (const chunk of await chat(STALLS).stream('x', { signal: controller.signal })) {
          if (chunk.content === 'tok0') controller.abort();
        }
      })(),
    ).rejects.toThrow();
    await abortSeen('chat');
  });

  it('falls back before the first byte', async () => {
    primaryDown();
    expect((await chat().invoke('hello')).content).toBe(CONTENT);
    expect(secondary.stats().lastModel).toBe('emu-backup');
  });
});

describe('LLM metrics through Slipstream', () => {
  it('labels first bytes, chunks, outcomes and usage tokens by wire format', async () => {
    await openaiClient(gw.url).responses.stream({ model: 'fast', input: 'x' }).finalResponse();
    await anthropicClient(gw.url).messages.stream(claude).finalMessage();
    await openaiClient(gw.url).embeddings.create({ model: 'embed', input: 'metrics' });
    const chat = await openaiClient(gw.url).chat.completions.create({
      model: 'fast',
      messages: user,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of chat) void chunk;
    const stalled = await openaiClient(gw.url).responses.create(
      { model: 'fast', input: 'x', stream: true },
      { headers: STALLS },
    );
    for await (const event of stalled) if (event.type === 'response.output_text.delta') break;
    await abortSeen('responses');
    const metrics = (await fetch(`${gw.adminUrl}/metrics`).then((r) => r.text())).split('\n');
    const value = (series: string) =>
      Number(metrics.find((line) => line.startsWith(`${series} `))?.slice(series.length + 1) ?? NaN);
    for (const format of ['responses', 'messages']) {
      expect(
        value(
          `slipstream_llm_first_byte_seconds_count{provider="${format === 'messages' ? 'claude' : 'one'}",format="${format}"}`,
        ),
      ).toBeGreaterThan(0);
    }
    expect(
      value('slipstream_llm_tokens_total{provider="one",format="responses",direction="output"}'),
    ).toBeGreaterThanOrEqual(TOKENS);
    expect(
      value('slipstream_llm_tokens_total{provider="claude",format="messages",direction="output"}'),
    ).toBeGreaterThanOrEqual(TOKENS);
    expect(
      value('slipstream_llm_tokens_total{provider="claude",format="messages",direction="input"}'),
    ).toBeGreaterThan(0);
    expect(
      value('slipstream_llm_tokens_total{provider="one",format="embeddings",direction="input"}'),
    ).toBeGreaterThan(0);
    expect(value('slipstream_llm_chunks_total{provider="claude",format="messages"}')).toBeGreaterThan(0);
    expect(
      value('slipstream_llm_tokens_total{provider="one",format="chat-completions",direction="output"}'),
    ).toBeGreaterThanOrEqual(TOKENS);
    expect(
      value('slipstream_llm_streams_total{provider="one",format="responses",outcome="aborted"}'),
    ).toBeGreaterThan(0);
  });
});
