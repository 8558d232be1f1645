// The real SDKs against the LLM emulator directly: proof that it speaks each surface as real clients expect.
import Anthropic from '@anthropic-ai/sdk';
import { ContextOverflowError } from '@langchain/core/errors';
import { APICallError, generateText, streamText } from 'ai';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { embeddingOf, expectedContent, startLlmEmulator } from '../../emulators/llm.js';
import type { LlmSurfaceName, RunningLlmEmulator } from '../../emulators/llm.js';
import {
  aiSdkCompatible,
  aiSdkOpenAI,
  anthropicClient,
  langchainChat,
  openaiClient,
} from '../helpers/llm-clients.js';

const TOKENS = 4;
const CONTENT = expectedContent(TOKENS);
const RATE_LIMITED = { 'x-emulate-status': '429', 'x-emulate-retry-after': '7' };
/** A 400 with the provider's context-length error. */
const REFUSED = { 'x-emulate-error': 'context-length' };
/** A stream that stalls after one token, so that only the client can end it. */
const STALLS = { 'x-emulate-hang-after': '1' };
const user = [{ role: 'user' as const, content: 'hello' }];

let emulator: RunningLlmEmulator;
beforeAll(async () => {
  emulator = await startLlmEmulator({ tokens: TOKENS });
});
afterAll(() => emulator.close());
beforeEach(() => emulator.reset());

/** Waits until the emulator saw the client leave one request on `surface`. */
async function abortSeen(surface: LlmSurfaceName): Promise<void> {
  await expect.poll(() => emulator.stats().surfaces[surface].aborted, { timeout: 10_000 }).toBe(1);
}

/** The error a call rejects with (fails the test when it resolves). */
async function failure(call: () => Promise<unknown>): Promise<Error> {
  try {
    await call();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to fail');
}

describe('the openai SDK', () => {
  const client = () => openaiClient(emulator.url);

  it('creates a chat completion, streamed with usage and not', async () => {
    const reply = await client().chat.completions.create({ model: 'emu-small', messages: user });
    expect(reply.choices[0]!.message.content).toBe(CONTENT);
    expect(reply.usage?.completion_tokens).toBe(TOKENS);
    const stream = await client().chat.completions.create({
      model: 'emu-small',
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
  });

  it('creates a response, retrieves it, and chains another with previous_response_id', async () => {
    const first = await client().responses.create({ model: 'emu-small', input: 'hello' });
    expect(first.output_text).toBe(CONTENT);
    expect(first.usage?.output_tokens).toBe(TOKENS);
    const again = await client().responses.retrieve(first.id);
    expect(again.output_text).toBe(CONTENT);
    const next = await client().responses.create({
      model: 'emu-small',
      input: 'more',
      previous_response_id: first.id,
    });
    expect(next.previous_response_id).toBe(first.id);
  });

  it('streams a response through the typed-event helper and as raw events', async () => {
    const helper = client().responses.stream({ model: 'emu-small', input: 'hello' });
    let deltas = '';
    helper.on('response.output_text.delta', (event) => (deltas += event.delta));
    const final = await helper.finalResponse();
    expect(deltas).toBe(CONTENT);
    expect(final.output_text).toBe(CONTENT);
    expect(final.usage?.output_tokens).toBe(TOKENS);
    const raw = await client().responses.create({ model: 'emu-small', input: 'hello', stream: true });
    const types: string[] = [];
    for await (const event of raw) types.push(event.type);
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
  });

  it('raises BadRequestError with the provider code for a previous_response_id the server never issued', async () => {
    const error = await failure(() =>
      client().responses.create({ model: 'emu-small', input: 'x', previous_response_id: 'resp_unknown' }),
    );
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe('previous_response_not_found');
  });

  it('creates embeddings, decoding its default base64 and taking floats when asked', async () => {
    const decoded = await client().embeddings.create({ model: 'emu-embed', input: ['alpha', 'beta'] });
    expect(decoded.data.map((d) => d.embedding)).toEqual([embeddingOf('alpha', 32), embeddingOf('beta', 32)]);
    const floats = await client().embeddings.create({
      model: 'emu-embed',
      input: 'alpha',
      dimensions: 8,
      encoding_format: 'float',
    });
    expect(floats.data[0]!.embedding).toEqual(embeddingOf('alpha', 8));
    expect(emulator.stats()).toMatchObject({ embeddingInputs: 3, surfaces: { embeddings: { requests: 2 } } });
  });

  it('retrieves a model, and raises NotFoundError for one the server does not list', async () => {
    expect((await client().models.retrieve('emu-small')).id).toBe('emu-small');
    expect(await failure(() => client().models.retrieve('nope'))).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('raises RateLimitError with Retry-After on a 429 from chat, Responses and embeddings', async () => {
    const options = { headers: RATE_LIMITED };
    const calls = [
      () => client().chat.completions.create({ model: 'emu-small', messages: user }, options),
      () => client().responses.create({ model: 'emu-small', input: 'x' }, options),
      () => client().embeddings.create({ model: 'emu-embed', input: 'x' }, options),
    ];
    for (const call of calls) {
      const error = await failure(call);
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect((error as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after')).toBe('7');
    }
  });

  it("puts the provider's 400 and 500 messages in its errors", async () => {
    const refused = await failure(() =>
      client().responses.create({ model: 'emu-small', input: 'x' }, { headers: REFUSED }),
    );
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect(refused.message).toContain('maximum context length is 8192 tokens');
    expect((refused as InstanceType<typeof OpenAI.APIError>).code).toBe('context_length_exceeded');
    const broken = await failure(() =>
      client().chat.completions.create(
        { model: 'emu-small', messages: user },
        { headers: { 'x-emulate-status': '500' } },
      ),
    );
    expect(broken).toBeInstanceOf(OpenAI.InternalServerError);
    expect(broken.message).toBe('500 emulated 500');
  });

  it('aborts a stalled chat stream and a stalled Responses stream, and the server sees both go', async () => {
    const controller = new AbortController();
    const chat = await client().chat.completions.create(
      { model: 'emu-small', messages: user, stream: true },
      { headers: STALLS, signal: controller.signal },
    );
    for await (const chunk of chat) if (chunk.choices[0]?.delta.content === 'tok0') controller.abort();
    await abortSeen('chat');
    const responses = await client().responses.create(
      { model: 'emu-small', input: 'x', stream: true },
      { headers: STALLS },
    );
    for await (const event of responses) if (event.type === 'response.output_text.delta') break;
    await abortSeen('responses');
  });
});

describe('the Anthropic SDK', () => {
  const client = () => anthropicClient(emulator.url);
  const params = { model: 'claude-emu', max_tokens: 100, messages: user };

  it('creates a message, streams one, and counts tokens in agreement with its usage', async () => {
    const message = await client().messages.create(params);
    expect(message.content).toEqual([{ type: 'text', text: CONTENT }]);
    const stream = client().messages.stream(params);
    let text = '';
    stream.on('text', (delta) => (text += delta));
    const final = await stream.finalMessage();
    expect(text).toBe(CONTENT);
    expect(final.usage).toMatchObject({ input_tokens: message.usage.input_tokens, output_tokens: TOKENS });
    const counted = await client().messages.countTokens({ model: params.model, messages: user });
    expect(counted.input_tokens).toBe(message.usage.input_tokens);
  });

  it('raises RateLimitError on a 429, OverloadedError on a 529, and keeps the provider message of a 400', async () => {
    const limited = await failure(() => client().messages.create(params, { headers: RATE_LIMITED }));
    expect(limited).toBeInstanceOf(Anthropic.RateLimitError);
    expect((limited as InstanceType<typeof Anthropic.APIError>).headers?.get('retry-after')).toBe('7');
    const overloaded = await failure(() =>
      client().messages.create(params, { headers: { 'x-emulate-status': '529' } }),
    );
    expect(overloaded).toBeInstanceOf(Anthropic.OverloadedError);
    const refused = await failure(() => client().messages.create(params, { headers: REFUSED }));
    expect(refused).toBeInstanceOf(Anthropic.BadRequestError);
    expect((refused as InstanceType<typeof Anthropic.APIError>).type).toBe('invalid_request_error');
    expect(refused.message).toMatch(/prompt is too long: \d+ tokens > 8192 maximum/);
  });

  it('authenticates with its key (sent as a Bearer token), and raises AuthenticationError for a wrong one', async () => {
    const guarded = await startLlmEmulator({ apiKey: 'right' });
    try {
      const good = anthropicClient(guarded.url, { apiKey: 'right' });
      expect((await good.messages.create(params)).content).toHaveLength(1);
      const bad = anthropicClient(guarded.url, { apiKey: 'wrong' });
      expect(await failure(() => bad.messages.create(params))).toBeInstanceOf(Anthropic.AuthenticationError);
    } finally {
      await guarded.close();
    }
  });

  it('aborts a stalled message stream, and the server sees it go', async () => {
    const stream = client().messages.stream(params, { headers: STALLS });
    stream.on('text', () => stream.abort());
    await expect(stream.finalMessage()).rejects.toBeInstanceOf(Anthropic.APIUserAbortError);
    await abortSeen('messages');
  });
});

describe("the AI SDK's default OpenAI provider (the Responses API)", () => {
  const openai = () => aiSdkOpenAI(emulator.url);

  it('generates and streams text over /v1/responses, with usage', async () => {
    const generated = await generateText({ model: openai()('emu-small'), prompt: 'hello', maxRetries: 0 });
    expect(generated.text).toBe(CONTENT);
    expect(generated.usage.outputTokens).toBe(TOKENS);
    const streamed = streamText({ model: openai()('emu-small'), prompt: 'hello', maxRetries: 0 });
    let text = '';
    for await (const delta of streamed.textStream) text += delta;
    expect(text).toBe(CONTENT);
    expect((await streamed.usage).outputTokens).toBe(TOKENS);
    expect(emulator.stats().surfaces).toMatchObject({ responses: { requests: 2 }, chat: { requests: 0 } });
  });

  it('raises APICallError with status 429 and the provider message of a 400', async () => {
    const limited = await failure(() =>
      generateText({ model: openai()('emu-small'), prompt: 'x', maxRetries: 0, headers: RATE_LIMITED }),
    );
    expect(APICallError.isInstance(limited)).toBe(true);
    expect((limited as APICallError).statusCode).toBe(429);
    expect((limited as APICallError).isRetryable).toBe(true);
    const refused = await failure(() =>
      generateText({ model: openai()('emu-small'), prompt: 'x', maxRetries: 0, headers: REFUSED }),
    );
    expect((refused as APICallError).statusCode).toBe(400);
    expect(refused.message).toContain('maximum context length is 8192 tokens');
  });

  it('aborts a stalled stream, and the server sees it go', async () => {
    const controller = new AbortController();
    const streamed = streamText({
      model: openai()('emu-small'),
      prompt: 'x',
      maxRetries: 0,
      headers: STALLS,
      abortSignal: controller.signal,
    });
    for await (const delta of streamed.textStream) if (delta === 'tok0') controller.abort();
    await abortSeen('responses');
  });

  it('also speaks chat completions through @ai-sdk/openai-compatible, with its 429 and 400', async () => {
    const compatible = aiSdkCompatible(emulator.url);
    const generated = await generateText({ model: compatible('emu-small'), prompt: 'hello', maxRetries: 0 });
    expect(generated.text).toBe(CONTENT);
    const streamed = streamText({ model: compatible('emu-small'), prompt: 'hello', maxRetries: 0 });
    let text = '';
    for await (const delta of streamed.textStream) text += delta;
    expect(text).toBe(CONTENT);
    expect((await streamed.usage).outputTokens).toBe(TOKENS);
    expect(emulator.stats().surfaces.chat.requests).toBe(2);
    const limited = await failure(() =>
      generateText({ model: compatible('emu-small'), prompt: 'x', maxRetries: 0, headers: RATE_LIMITED }),
    );
    expect((limited as APICallError).statusCode).toBe(429);
    const refused = await failure(() =>
      generateText({ model: compatible('emu-small'), prompt: 'x', maxRetries: 0, headers: REFUSED }),
    );
    expect(refused.message).toContain('maximum context length is 8192 tokens');
  });
});

describe("LangChain's ChatOpenAI", () => {
  it('invokes and streams', async () => {
    const model = langchainChat(emulator.url, 'emu-small');
    expect((await model.invoke('hello')).content).toBe(CONTENT);
    let text = '';
    for await (const chunk of await model.stream('hello')) text += chunk.text;
    expect(text).toBe(CONTENT);
  });

  it('raises the rate-limit error on a 429 and ContextOverflowError on a context-length 400', async () => {
    const limited = await failure(() =>
      langchainChat(emulator.url, 'emu-small', { headers: RATE_LIMITED }).invoke('x'),
    );
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
    expect((limited as { lc_error_code?: string }).lc_error_code).toBe('MODEL_RATE_LIMIT');
    const refused = await failure(() =>
      langchainChat(emulator.url, 'emu-small', { headers: REFUSED }).invoke('x'),
    );
    expect(refused).toBeInstanceOf(ContextOverflowError);
    expect(refused.message).toContain('maximum context length is 8192 tokens');
  });

  it('aborts a stalled stream, and the server sees it go', async () => {
    const controller = new AbortController();
    const model = langchainChat(emulator.url, 'emu-small', { headers: STALLS });
    await expect(
      (async () => {
        for await (const chunk of await model.stream('x', { signal: controller.signal })) {
          if (chunk.content === 'tok0') controller.abort();
        }
      })(),
    ).rejects.toThrow();
    await abortSeen('chat');
  });
});
