// The real SDKs reading the adapters' own error replies and mid-stream error events, served as they would be.
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import { APICallError, generateText, streamText } from 'ai';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chatSurface } from '../../../emulators/llm/chat.js';
import { messagesSurface } from '../../../emulators/llm/messages.js';
import { responsesSurface } from '../../../emulators/llm/responses.js';
import type { Surface } from '../../../emulators/llm/surface.js';
import { GatewayError } from '../../../src/errors.js';
import { chatCompletionsFormat } from '../../../src/entrypoints/llm/chat-completions.js';
import { embeddingsFormat } from '../../../src/entrypoints/llm/embeddings.js';
import type { LlmFormat, StreamingFormat } from '../../../src/entrypoints/llm/format.js';
import { messagesFormat } from '../../../src/entrypoints/llm/messages.js';
import { providerError } from '../../../src/streams/provider-error.js';
import { responsesFormat } from '../../../src/entrypoints/llm/responses.js';
import { aiSdkOpenAI, anthropicClient, openaiClient } from '../../helpers/llm-clients.js';
import { generation } from '../../helpers/llm-wire.js';

/** What the server answers next, whatever the path. */
let answer: (res: ServerResponse) => void = (res) => res.writeHead(500).end();
let server: Server;
let origin: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Answers with `format`'s error reply for `error`. */
function replyWith(format: LlmFormat, error: GatewayError): void {
  answer = (res) => {
    const reply = format.errorBody(error);
    res.writeHead(reply.status, reply.headers).end(reply.body);
  };
}

/** Answers with the first events and one token of a `surface` stream, then `format`'s error event. */
function breakStream(surface: Surface, format: StreamingFormat, id: string, error: GatewayError): void {
  answer = (res) => {
    const stream = surface.stream(generation(id, ['tok0', ' tok1']), false);
    const sent = Buffer.from(stream.head + stream.token('tok0'));
    const tap = format.streamTap(() => undefined);
    tap.push(sent);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(sent);
    res.end(format.streamError(error, tap));
  };
}

async function failure(call: () => Promise<unknown>): Promise<Error> {
  try {
    await call();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to fail');
}

const rateLimited = providerError(
  {
    status: 429,
    headers: { 'retry-after': '2' },
    body: Buffer.from('{"error":{"message":"Rate limit reached"}}'),
  },
  'one/emu',
);
const exhausted = providerError(
  { status: 500, headers: {}, body: Buffer.from('{"error":{"message":"emulated 500"}}') },
  'one/emu',
);
const idle = new GatewayError('GW_UPSTREAM_TIMEOUT', 'one/emu: no chunk for 300 ms');

describe('OpenAI clients reading Responses and embeddings errors', () => {
  it('raise RateLimitError with the GW code, Retry-After and the provider message', async () => {
    replyWith(responsesFormat, rateLimited);
    const error = await failure(() => openaiClient(origin).responses.create({ model: 'm', input: 'x' }));
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    const api = error as InstanceType<typeof OpenAI.RateLimitError>;
    expect(api.code).toBe('GW_UPSTREAM_RATE_LIMITED');
    expect(api.headers?.get('retry-after')).toBe('2');
    expect(api.message).toBe('429 one/emu answered 429: Rate limit reached');
    const ai = await failure(() =>
      generateText({ model: aiSdkOpenAI(origin)('m'), prompt: 'x', maxRetries: 0 }),
    );
    expect(APICallError.isInstance(ai) && ai.statusCode).toBe(429);
    expect(ai.message).toBe('one/emu answered 429: Rate limit reached');
  });

  it("raise a server error that keeps the provider's message once fallbacks are exhausted", async () => {
    replyWith(embeddingsFormat, exhausted);
    const error = await failure(() => openaiClient(origin).embeddings.create({ model: 'm', input: 'x' }));
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(error.message).toBe('502 one/emu answered 500: emulated 500');
  });

  it('raise APIError from the error event that ends a broken Responses stream, after the text before it', async () => {
    breakStream(responsesSurface, responsesFormat, 'resp_x_1', idle);
    const stream = await openaiClient(origin).responses.create({ model: 'm', input: 'x', stream: true });
    let text = '';
    const broken = await failure(async () => {
      for await (const event of stream) if (event.type === 'response.output_text.delta') text += event.delta;
    });
    expect(text).toBe('tok0');
    expect(broken).toBeInstanceOf(OpenAI.APIError);
    expect(broken.message).toBe('one/emu: no chunk for 300 ms');
    expect((broken as InstanceType<typeof OpenAI.APIError>).code).toBe('GW_UPSTREAM_TIMEOUT');
    breakStream(responsesSurface, responsesFormat, 'resp_x_2', idle);
    await expect(
      openaiClient(origin).responses.stream({ model: 'm', input: 'x' }).finalResponse(),
    ).rejects.toThrow('no chunk for 300 ms');
  });

  it('raise APIError from the error event that ends a broken chat completions stream', async () => {
    breakStream(chatSurface, chatCompletionsFormat, 'chatcmpl-x', idle);
    const stream = await openaiClient(origin).chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
    });
    let text = '';
    const broken = await failure(async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    });
    expect(text).toBe('tok0');
    expect(broken.message).toBe('one/emu: no chunk for 300 ms');
    expect((broken as InstanceType<typeof OpenAI.APIError>).code).toBe('GW_UPSTREAM_TIMEOUT');
  });

  it('report the error event as a stream error in the AI SDK', async () => {
    breakStream(responsesSurface, responsesFormat, 'resp_x_3', idle);
    const errors: unknown[] = [];
    const streamed = streamText({
      model: aiSdkOpenAI(origin)('m'),
      prompt: 'x',
      maxRetries: 0,
      onError: ({ error }) => void errors.push(error),
    });
    let text = '';
    for await (const delta of streamed.textStream) text += delta;
    expect(text).toBe('tok0');
    expect(errors).toHaveLength(1);
    expect(String((errors[0] as Error).message)).toContain('no chunk for 300 ms');
  });
});

describe('the Anthropic client reading Messages errors', () => {
  it('raises RateLimitError with the Anthropic type and the GW code', async () => {
    replyWith(messagesFormat, rateLimited);
    const params = { model: 'm', max_tokens: 5, messages: [{ role: 'user' as const, content: 'x' }] };
    const error = await failure(() => anthropicClient(origin).messages.create(params));
    expect(error).toBeInstanceOf(Anthropic.RateLimitError);
    const api = error as InstanceType<typeof Anthropic.APIError>;
    expect(api.type).toBe('rate_limit_error');
    expect(api.apiMessage).toBe('one/emu answered 429: Rate limit reached');
    expect((api.error as { error: { code: string } }).error.code).toBe('GW_UPSTREAM_RATE_LIMITED');
  });

  it('raises APIError of type timeout_error from the error event that ends a broken stream', async () => {
    breakStream(messagesSurface, messagesFormat, 'msg_x_1', idle);
    const params = { model: 'm', max_tokens: 5, messages: [{ role: 'user' as const, content: 'x' }] };
    const stream = anthropicClient(origin).messages.stream(params);
    let text = '';
    stream.on('text', (delta) => (text += delta));
    const broken = await failure(() => stream.finalMessage());
    expect(text).toBe('tok0');
    expect(broken).toBeInstanceOf(Anthropic.APIError);
    expect((broken as InstanceType<typeof Anthropic.APIError>).type).toBe('timeout_error');
    expect((broken as InstanceType<typeof Anthropic.APIError>).apiMessage).toBe(
      'one/emu: no chunk for 300 ms',
    );
  });
});
