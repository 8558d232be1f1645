import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { embeddingOf, expectedContent, startLlmEmulator } from '../../emulators/llm.js';
import type { LlmEmulatorOptions, RunningLlmEmulator } from '../../emulators/llm.js';
import { spawnCli, stopAll } from '../helpers/processes.js';

const running: RunningLlmEmulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.close()));
  await stopAll();
});

async function start(options: LlmEmulatorOptions = {}) {
  const emulator = await startLlmEmulator(options);
  running.push(emulator);
  return emulator;
}

const ANTHROPIC_HEADERS = { 'anthropic-version': '2023-06-01' };

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.body.text();
  return {
    status: response.statusCode,
    headers: response.headers,
    text,
    json: () => JSON.parse(text),
  };
}

/** Splits an SSE body into named events (the slow, exact way). */
function events(sse: string): Array<{ event: string | undefined; data: any }> {
  return sse
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const lines = block.split('\n');
      const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
      const data = lines.find((l) => l.startsWith('data: '))!.slice(6);
      return { event, data: JSON.parse(data) };
    });
}

const responsesBody = { model: 'emu-small', input: 'hello' };
const messagesBody = { model: 'claude-emu', max_tokens: 100, messages: [{ role: 'user', content: 'hello' }] };

describe('the LLM emulator speaks the Responses API', () => {
  it('streams typed events with rising sequence numbers from response.created to response.completed with usage', async () => {
    const emulator = await start({ tokens: 4 });
    const reply = await post(`${emulator.url}/v1/responses`, { ...responsesBody, stream: true });
    expect(reply.headers['content-type']).toContain('text/event-stream');
    const list = events(reply.text);
    for (const e of list) expect(e.event).toBe(e.data.type);
    expect(list.map((e) => e.data.sequence_number)).toEqual(list.map((_, i) => i));
    expect(list.slice(0, 4).map((e) => e.event)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
    ]);
    const deltas = list.filter((e) => e.event === 'response.output_text.delta');
    expect(deltas.map((e) => e.data.delta).join('')).toBe(expectedContent(4));
    const completed = list.at(-1)!;
    expect(completed.event).toBe('response.completed');
    expect(completed.data.response.status).toBe('completed');
    expect(completed.data.response.output[0].content[0].text).toBe(expectedContent(4));
    expect(completed.data.response.usage).toMatchObject({ output_tokens: 4 });
    expect(completed.data.response.usage.input_tokens).toBeGreaterThan(0);
    expect(reply.text).not.toContain('[DONE]');
    expect(emulator.stats()).toMatchObject({ completedStreams: 1, surfaces: { responses: { requests: 1 } } });
  });

  it('answers a non-streamed response and serves it again at GET /v1/responses/:id, unless store is false', async () => {
    const emulator = await start({ tokens: 2 });
    const created = (await post(`${emulator.url}/v1/responses`, responsesBody)).json();
    expect(created).toMatchObject({ object: 'response', status: 'completed', usage: { output_tokens: 2 } });
    const fetched = await request(`${emulator.url}/v1/responses/${created.id}`);
    expect(await fetched.body.json()).toEqual(created);
    const unstored = (await post(`${emulator.url}/v1/responses`, { ...responsesBody, store: false })).json();
    const missing = await request(`${emulator.url}/v1/responses/${unstored.id}`);
    expect(missing.statusCode).toBe(404);
    expect(((await missing.body.json()) as any).error.message).toContain(unstored.id);
  });

  it('accepts a previous_response_id it issued and refuses any other with 400 previous_response_not_found', async () => {
    const emulator = await start({ tokens: 2 });
    const other = await start({ tokens: 2 });
    const first = (await post(`${emulator.url}/v1/responses`, responsesBody)).json();
    const chained = await post(`${emulator.url}/v1/responses`, {
      ...responsesBody,
      previous_response_id: first.id,
    });
    expect(chained.status).toBe(200);
    expect(chained.json().previous_response_id).toBe(first.id);
    const foreign = (await post(`${other.url}/v1/responses`, responsesBody)).json();
    const refused = await post(`${emulator.url}/v1/responses`, {
      ...responsesBody,
      previous_response_id: foreign.id,
    });
    expect(refused.status).toBe(400);
    expect(refused.json().error).toMatchObject({
      code: 'previous_response_not_found',
      param: 'previous_response_id',
      type: 'invalid_request_error',
    });
    expect(refused.json().error.message).toContain(foreign.id);
  });

  it('records one timeline entry per event written', async () => {
    const emulator = await start({ tokens: 3 });
    await post(`${emulator.url}/v1/responses`, { ...responsesBody, stream: true }, { 'x-request-id': 'r' });
    expect(emulator.timeline('r')).toHaveLength(4 + 3 + 4);
  });
});

describe('the LLM emulator speaks Anthropic Messages', () => {
  it('streams message_start … message_stop with input usage first and the output count in message_delta', async () => {
    const emulator = await start({ tokens: 3 });
    const reply = await post(
      `${emulator.url}/v1/messages`,
      { ...messagesBody, stream: true },
      ANTHROPIC_HEADERS,
    );
    const list = events(reply.text);
    for (const e of list) expect(e.event).toBe(e.data.type);
    expect(list.map((e) => e.event)).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    const text = list
      .filter((e) => e.event === 'content_block_delta')
      .map((e) => e.data.delta.text)
      .join('');
    expect(text).toBe(expectedContent(3));
    expect(list[0]!.data.message.usage.input_tokens).toBeGreaterThan(0);
    expect(list[7]!.data.usage).toEqual({ output_tokens: 3 });
  });

  it('answers a non-streamed message, and count_tokens agrees with its input usage', async () => {
    const emulator = await start({ tokens: 2 });
    const message = (await post(`${emulator.url}/v1/messages`, messagesBody, ANTHROPIC_HEADERS)).json();
    expect(message).toMatchObject({
      type: 'message',
      role: 'assistant',
      content: [{ type: 'text', text: expectedContent(2) }],
      stop_reason: 'end_turn',
      usage: { output_tokens: 2 },
    });
    const { max_tokens: _, ...countBody } = messagesBody;
    const counted = await post(`${emulator.url}/v1/messages/count_tokens`, countBody, ANTHROPIC_HEADERS);
    expect(counted.json()).toEqual({ input_tokens: message.usage.input_tokens });
    expect(emulator.stats().surfaces).toMatchObject({
      messages: { requests: 1 },
      countTokens: { requests: 1 },
    });
  });

  it('refuses a request without anthropic-version, as the real API does, unless told not to check', async () => {
    const strict = await start();
    const refused = await post(`${strict.url}/v1/messages`, messagesBody);
    expect(refused.status).toBe(400);
    expect(refused.json()).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'anthropic-version: header is required' },
    });
    const lax = await start({ requireAnthropicVersion: false });
    expect((await post(`${lax.url}/v1/messages`, messagesBody)).status).toBe(200);
  });

  it('refuses a message without max_tokens with a field error in its own shape', async () => {
    const emulator = await start();
    const { max_tokens: _, ...body } = messagesBody;
    const refused = await post(`${emulator.url}/v1/messages`, body, ANTHROPIC_HEADERS);
    expect(refused.status).toBe(400);
    expect(refused.json().error).toEqual({
      type: 'invalid_request_error',
      message: 'max_tokens: Field required',
    });
  });
});

describe('the LLM emulator checks API keys when given one', () => {
  it('wants x-api-key or a Bearer token on the Anthropic surfaces and a Bearer token on the OpenAI ones', async () => {
    const emulator = await start({ apiKey: 'k1' });
    const noKey = await post(`${emulator.url}/v1/messages`, messagesBody, ANTHROPIC_HEADERS);
    expect(noKey.status).toBe(401);
    expect(noKey.json().error).toEqual({
      type: 'authentication_error',
      message: 'x-api-key header is required',
    });
    const bearer = await post(`${emulator.url}/v1/messages`, messagesBody, {
      ...ANTHROPIC_HEADERS,
      authorization: 'Bearer k1',
    });
    expect(bearer.status).toBe(200); // how @anthropic-ai/sdk 1.x sends its key
    const wrongBearer = await post(`${emulator.url}/v1/messages`, messagesBody, {
      ...ANTHROPIC_HEADERS,
      authorization: 'Bearer k2',
    });
    expect(wrongBearer.json().error).toEqual({ type: 'authentication_error', message: 'invalid x-api-key' });
    const good = await post(`${emulator.url}/v1/messages`, messagesBody, {
      ...ANTHROPIC_HEADERS,
      'x-api-key': 'k1',
    });
    expect(good.status).toBe(200);
    const wrong = await post(`${emulator.url}/v1/responses`, responsesBody, { authorization: 'Bearer k2' });
    expect(wrong.status).toBe(401);
    expect(wrong.json().error).toMatchObject({ code: 'invalid_api_key' });
    expect(wrong.text).not.toContain('k1');
    const right = await post(`${emulator.url}/v1/responses`, responsesBody, { authorization: 'Bearer k1' });
    expect(right.status).toBe(200);
  });
});

describe('the LLM emulator makes embeddings', () => {
  it('answers each input with its own deterministic vector, in order, and counts calls and inputs', async () => {
    const emulator = await start();
    const one = (await post(`${emulator.url}/v1/embeddings`, { model: 'emu-embed', input: 'alpha' })).json();
    expect(one.data).toEqual([{ object: 'embedding', index: 0, embedding: embeddingOf('alpha', 32) }]);
    const many = (
      await post(`${emulator.url}/v1/embeddings`, { model: 'emu-embed', input: ['b', 'alpha', 'c'] })
    ).json();
    expect(many.data.map((d: any) => d.embedding)).toEqual([
      embeddingOf('b', 32),
      embeddingOf('alpha', 32),
      embeddingOf('c', 32),
    ]);
    expect(many.usage.prompt_tokens).toBe(1 + 2 + 1); // a token per 4 characters, at least one per input
    expect(embeddingOf('b', 32)).not.toEqual(embeddingOf('c', 32));
    expect(emulator.stats()).toMatchObject({ embeddingInputs: 4, surfaces: { embeddings: { requests: 2 } } });
  });

  it('honours dimensions and encodes base64 as little-endian float32', async () => {
    const emulator = await start();
    const reply = (
      await post(`${emulator.url}/v1/embeddings`, {
        model: 'emu-embed',
        input: ['x'],
        dimensions: 8,
        encoding_format: 'base64',
      })
    ).json();
    const bytes = Buffer.from(reply.data[0].embedding as string, 'base64');
    const floats = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
    expect(floats).toEqual(embeddingOf('x', 8));
    const norm = Math.sqrt(floats.reduce((sum, v) => sum + v * v, 0));
    expect(norm).toBeCloseTo(1, 5);
  });

  it('refuses an empty input with 400 in OpenAI shape, naming the parameter', async () => {
    const emulator = await start();
    const refused = await post(`${emulator.url}/v1/embeddings`, { model: 'emu-embed', input: [] });
    expect(refused.status).toBe(400);
    expect(refused.json().error).toMatchObject({ type: 'invalid_request_error', param: 'input' });
  });
});

describe('the LLM emulator injects faults on every surface in that surface’s own shape', () => {
  it('sends 429 with Retry-After as an Anthropic rate_limit_error on Messages', async () => {
    const emulator = await start({ errorRate: 1, errorStatus: 429, retryAfterS: 3 });
    const reply = await post(`${emulator.url}/v1/messages`, messagesBody, ANTHROPIC_HEADERS);
    expect(reply.status).toBe(429);
    expect(reply.headers['retry-after']).toBe('3');
    expect(reply.json()).toEqual({
      type: 'error',
      error: { type: 'rate_limit_error', message: 'emulated 429' },
    });
  });

  it("sends the surface's context-length error when asked, and the configured message otherwise", async () => {
    const emulator = await start();
    const tooLong = { 'x-emulate-error': 'context-length' };
    const responses = await post(`${emulator.url}/v1/responses`, responsesBody, tooLong);
    expect(responses.status).toBe(400);
    expect(responses.json().error).toMatchObject({ code: 'context_length_exceeded', param: 'input' });
    expect(responses.json().error.message).toContain('maximum context length is 8192 tokens');
    const messages = await post(`${emulator.url}/v1/messages`, messagesBody, {
      ...ANTHROPIC_HEADERS,
      ...tooLong,
    });
    expect(messages.json().error.message).toMatch(/^prompt is too long: \d+ tokens > 8192 maximum$/);
    emulator.configure({
      errorRate: 1,
      errorStatus: 400,
      errorMessage: 'Your request was flagged by the content policy.',
    });
    const embeddings = (await post(`${emulator.url}/v1/embeddings`, { model: 'e', input: 'x' })).json();
    expect(embeddings.error).toMatchObject({
      message: 'Your request was flagged by the content policy.',
      type: 'invalid_request_error',
    });
  });

  it('takes a per-request status and message from headers', async () => {
    const emulator = await start();
    const reply = await post(`${emulator.url}/v1/messages`, messagesBody, {
      ...ANTHROPIC_HEADERS,
      'x-emulate-status': '529',
      'x-emulate-error-message': encodeURIComponent('Overloaded'),
    });
    expect(reply.status).toBe(529);
    expect(reply.json().error).toEqual({ type: 'overloaded_error', message: 'Overloaded' });
  });

  it('counts a client that leaves a hung stream, and one that leaves a hung non-streamed request, as aborted', async () => {
    const emulator = await start({ tokens: 10 });
    const stream = await request(`${emulator.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-emulate-hang-after': '2' },
      body: JSON.stringify({ ...responsesBody, stream: true }),
    });
    let received = '';
    for await (const chunk of stream.body) {
      received += (chunk as Buffer).toString();
      if (received.includes('" tok1"')) break; // leaves the stream: undici aborts the request
    }
    await expect.poll(() => emulator.stats().surfaces.responses.aborted, { timeout: 10_000 }).toBe(1);
    const controller = new AbortController();
    const hung = request(`${emulator.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-emulate-hang': '1' },
      body: JSON.stringify({ model: 'e', input: 'x' }),
      signal: controller.signal,
    });
    await expect.poll(() => emulator.stats().hangs, { timeout: 10_000 }).toBe(2);
    controller.abort();
    await expect(hung).rejects.toThrow();
    await expect.poll(() => emulator.stats().surfaces.embeddings.aborted, { timeout: 10_000 }).toBe(1);
    expect(emulator.stats()).toMatchObject({ aborted: 2, abortedStreams: 1, completedStreams: 0 });
  });
});

describe('the LLM emulator lists models', () => {
  it('retrieves a listed model by id and answers 404 model_not_found for others', async () => {
    const emulator = await start({ models: ['a'] });
    const found = await request(`${emulator.url}/v1/models/a`);
    expect(await found.body.json()).toMatchObject({ id: 'a', object: 'model' });
    const missing = await request(`${emulator.url}/v1/models/constructor`);
    expect(missing.statusCode).toBe(404);
    expect(((await missing.body.json()) as any).error.code).toBe('model_not_found');
  });
});

describe('`slipstream emulate llm`', () => {
  it('takes --api-key and --dimensions', async () => {
    const child = await spawnCli(['emulate', 'llm', '--api-key', 'cli-key', '--dimensions', '4']);
    const refused = await post(`${child.url}/v1/embeddings`, { model: 'e', input: 'x' });
    expect(refused.status).toBe(401);
    const reply = await post(
      `${child.url}/v1/embeddings`,
      { model: 'e', input: 'x' },
      { authorization: 'Bearer cli-key' },
    );
    expect(reply.json().data[0].embedding).toEqual(embeddingOf('x', 4));
  });

  it('takes --error-message for injected errors', async () => {
    const child = await spawnCli([
      'emulate',
      'llm',
      '--errors',
      '1',
      '--error-status',
      '503',
      '--error-message',
      'down',
    ]);
    const reply = await post(`${child.url}/v1/chat/completions`, { model: 'e', messages: [] });
    expect(reply.status).toBe(503);
    expect(reply.json().error).toMatchObject({ message: 'down', type: 'server_error' });
  });
});
