import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { expectedContent, startLlmEmulator } from '../../emulators/llm.js';
import type { RunningLlmEmulator } from '../../emulators/llm.js';
import { parseConfig } from '../../src/config/load.js';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { contentOf } from '../helpers/sse.js';

interface Received {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** Epoch ms at which each body chunk reached the client. */
  at: Array<{ ms: number; text: string }>;
}

async function chat(
  url: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<Received> {
  const response = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], stream: true, ...body }),
  });
  const at: Received['at'] = [];
  let text = '';
  for await (const chunk of response.body) {
    const piece = (chunk as Buffer).toString();
    at.push({ ms: performance.timeOrigin + performance.now(), text: piece });
    text += piece;
  }
  return { status: response.statusCode, headers: response.headers, text, at };
}

describe('the chat relay', () => {
  let primary: RunningLlmEmulator;
  let secondary: RunningLlmEmulator;
  let gw: RunningGateway;
  let warmConnections = 0;

  beforeAll(async () => {
    primary = await startLlmEmulator({ tokens: 5 });
    secondary = await startLlmEmulator({ tokens: 5 });
    gw = await startGateway(
      `
upstreams: {}
llm:
  providers:
    one:
      baseUrl: ${primary.url}/v1
      apiKey: \${KEY}
      models: { fast: emu-small, solo: emu-large }
      timeouts: { firstByte: 300ms, idle: 300ms }
      retry: { attempts: 2, baseDelay: 5ms, maxDelay: 1s }
      breaker: false
    two:
      baseUrl: ${secondary.url}/v1
      models: { backup: emu-backup }
      breaker: false
    fragile:
      baseUrl: ${primary.url}/v1
      models: { fragile: emu-fragile }
      pool: { warm: 0 }
      retry: false
      breaker: { threshold: 2, halfOpenAfter: 60s }
    short:
      baseUrl: ${primary.url}/v1
      models: { short: emu-short }
      pool: { warm: 0 }
      timeouts: { total: 300ms }
  fallbacks:
    fast: [backup]
`,
      { KEY: 'sk-test' },
    );
    warmConnections = primary.stats().connections;
  });

  afterAll(async () => {
    await gw?.close();
    await primary?.close();
    await secondary?.close();
  });

  beforeEach(() => {
    const healthy = { errorRate: 0, hangRate: 0, hangAfter: undefined, gap: '0ms', ttft: '0ms', tokens: 5 };
    primary.configure(healthy);
    secondary.configure(healthy);
    primary.reset();
    secondary.reset();
  });

  it('relays a stream whose content and framing match the provider, rewriting only the model', async () => {
    const received = await chat(gw.url, { model: 'fast' });
    expect(received.status).toBe(200);
    expect(received.headers['content-type']).toContain('text/event-stream');
    expect(contentOf(received.text)).toBe(expectedContent(5));
    expect(received.text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(primary.stats()).toMatchObject({ lastModel: 'emu-small', completedStreams: 1 });

    // The same request sent straight to the provider gives the same bytes; only `created` (the provider's
    // clock in seconds) and the completion id (unique per completion) differ between them.
    primary.reset();
    const direct = await chat(`${primary.url}`, { model: 'emu-small' }, { authorization: 'Bearer sk-test' });
    const clock = (sse: string) =>
      sse.replaceAll(/"created":\d+/g, '"created":0').replaceAll(/"id":"chatcmpl-[^"]*"/g, '"id":"x"');
    expect(direct.status).toBe(200);
    expect(received.headers['content-type']).toBe(direct.headers['content-type']);
    expect(clock(received.text)).toBe(clock(direct.text));
    expect(received.text.length).toBe(direct.text.length);
  });

  it('accepts provider/model names and answers non-streaming completions', async () => {
    const response = await call(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'two/custom', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(response.status).toBe(200);
    expect(response.body.choices[0].message.content).toBe(expectedContent(5));
    expect(secondary.stats().lastModel).toBe('custom');
  });

  it('writes each chunk to the client before the provider sends the next one', async () => {
    primary.configure({ gap: '200ms', tokens: 3 });
    const received = await chat(gw.url, { model: 'fast' }, { 'x-request-id': 'no-buffering' });
    const sent = primary.timeline('no-buffering')!;
    // sent[1] is "tok0", sent[2] "tok1": the client must have tok0 long before tok1 left the provider.
    const gotTok0 = received.at.find((c) => c.text.includes('"tok0"'))!;
    expect(gotTok0).toBeDefined();
    expect(gotTok0.ms).toBeLessThan(sent[2]! - 100);
    expect(contentOf(received.text)).toBe(expectedContent(3));
  });

  it('cancels the provider request as soon as the client goes away', async () => {
    primary.configure({ gap: '20ms', tokens: 200 });
    const response = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'fast', stream: true, messages: [] }),
    });
    let chunks = 0;
    for await (const chunk of response.body) {
      if ((chunk as Buffer).includes(' tok1"')) break;
      chunks++;
    }
    expect(chunks).toBeGreaterThan(0);
    await expect.poll(() => primary.stats().abortedStreams, { timeout: 2_000 }).toBe(1);
    expect(primary.stats()).toMatchObject({ inFlight: 0, completedStreams: 0 });
    expect(primary.stats().completionTokens).toBeLessThan(50);
  });

  it('falls back to the next provider when the first fails before the first byte', async () => {
    primary.configure({ errorRate: 1, errorStatus: 500 });
    const received = await chat(gw.url, { model: 'fast' });
    expect(received.status).toBe(200);
    expect(contentOf(received.text)).toBe(expectedContent(5));
    expect(primary.stats().requests).toBe(2); // first attempt + one retry
    expect(secondary.stats()).toMatchObject({ requests: 1, lastModel: 'emu-backup' });
  });

  it('falls back when the first provider never answers within the first-byte deadline', async () => {
    primary.configure({ hangRate: 1 });
    const received = await chat(gw.url, { model: 'fast' });
    expect(received.status).toBe(200);
    expect(contentOf(received.text)).toBe(expectedContent(5));
    expect(secondary.stats().requests).toBe(1);
  });

  it('never falls back after the first byte: an idle stream ends with an SSE error event', async () => {
    primary.configure({ hangAfter: 2 });
    const received = await chat(gw.url, { model: 'fast' });
    expect(received.status).toBe(200);
    expect(contentOf(received.text)).toBe('tok0 tok1');
    const last = received.text.trimEnd().split('\n\n').at(-1)!;
    expect(last.startsWith('event: error\ndata: ')).toBe(true);
    const error = JSON.parse(last.split('\n')[1]!.slice(6)) as { error: { code: string } };
    expect(error.error.code).toBe('GW_UPSTREAM_TIMEOUT');
    expect(secondary.stats().requests).toBe(0);
  });

  it('answers 429 GW_UPSTREAM_RATE_LIMITED with Retry-After when the only provider keeps answering 429', async () => {
    primary.configure({ errorRate: 1, errorStatus: 429, retryAfterS: 7 });
    const response = await call(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'solo', messages: [] }),
    });
    expect(response.status).toBe(429);
    expect(response.body.error.code).toBe('GW_UPSTREAM_RATE_LIMITED');
    expect(response.headers['retry-after']).toBe('7');
    // Retry-After beyond maxDelay: no retry, the client is told to wait instead.
    expect(primary.stats().requests).toBe(1);
  });

  it('relays a provider 4xx about the request as it is', async () => {
    const response = await call(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'x-emulate-status': '400' },
      body: JSON.stringify({ model: 'fast', messages: [] }),
    });
    expect(response.status).toBe(400);
    expect(response.body.error.message).toBe('emulated 400');
    expect(secondary.stats().requests).toBe(0);
  });

  it('rejects unknown models, bad JSON and wrong methods with gateway codes', async () => {
    const unknown = await call(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'gpt-9', messages: [] }),
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('GW_LLM_NO_PROVIDER');
    const bad = await call(`${gw.url}/v1/chat/completions`, { method: 'POST', body: '{nope' });
    expect(bad.body.error.code).toBe('GW_BAD_REQUEST');
    const get = await call(`${gw.url}/v1/chat/completions`);
    expect(get.status).toBe(405);
  });

  it('cuts a stream at the total deadline with an SSE error event and cancels the provider request', async () => {
    primary.configure({ gap: '50ms', tokens: 40 });
    const received = await chat(gw.url, { model: 'short' });
    expect(received.status).toBe(200);
    const content = contentOf(received.text);
    expect(content.length).toBeGreaterThan(0);
    expect(expectedContent(40).startsWith(content)).toBe(true);
    expect(received.text).toContain('event: error\ndata: {"error":{"code":"GW_UPSTREAM_TIMEOUT"');
    await expect.poll(() => primary.stats().abortedStreams).toBe(1);
  });

  it('opens provider connections at start-up, before any request', () => {
    expect(warmConnections).toBeGreaterThanOrEqual(2);
  });

  it('opens a provider breaker after consecutive failures and then fails fast without calling it', async () => {
    const send = (headers: Record<string, string> = {}) =>
      call(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ model: 'fragile', messages: [] }),
      });
    for (let i = 0; i < 2; i++) {
      const failed = await send({ 'x-emulate-status': '500' });
      expect(failed.status).toBe(502);
      expect(failed.body.error.code).toBe('GW_UPSTREAM_UNAVAILABLE');
    }
    const open = await send();
    expect(open.status).toBe(503);
    expect(open.body.error.code).toBe('GW_BREAKER_OPEN');
    expect(primary.stats().requests).toBe(2);
  });

  it('exposes relay metrics: first byte, chunks and stream outcomes', async () => {
    await chat(gw.url, { model: 'fast' });
    const metrics = (await call(`${gw.adminUrl}/metrics`)).body as string;
    expect(metrics).toMatch(
      /slipstream_llm_first_byte_seconds_count\{provider="one",format="chat-completions"\} [1-9]/,
    );
    expect(metrics).toMatch(/slipstream_llm_chunks_total\{provider="one",format="chat-completions"\} [1-9]/);
    expect(metrics).toMatch(
      /slipstream_llm_streams_total\{provider="one",format="chat-completions",outcome="complete"\} [1-9]/,
    );
  });

  it('lists the configured model aliases', async () => {
    const response = await call(`${gw.url}/v1/models`);
    expect(response.body.data.map((m: { id: string }) => m.id).sort()).toEqual([
      'backup',
      'fast',
      'fragile',
      'short',
      'solo',
    ]);
  });
});

describe('llm config', () => {
  const problems = (yaml: string) => {
    try {
      parseConfig(`upstreams: {}\n${yaml}`, 'x.yaml', {});
      return '';
    } catch (error) {
      return (error as Error).message;
    }
  };

  it('rejects a model alias served by two providers, unknown fallbacks and postgres without a url', () => {
    const message = problems(`
llm:
  providers:
    a: { baseUrl: "http://127.0.0.1:1/v1", models: { m: x } }
    b: { baseUrl: "http://127.0.0.1:2/v1", models: { m: y } }
  fallbacks:
    m: [nope, b/ok]
  transcripts: { store: postgres }
`);
    expect(message).toContain('model "m" is already served by provider "a"');
    expect(message).toContain('unknown model "nope"');
    expect(message).not.toContain('unknown model "b/ok"');
    expect(message).toContain('needs transcripts.postgres.url');
  });

  it('fills defaults: 200 ms flush interval, 1,024 chars, deltas persisted, SQLite', () => {
    const config = parseConfig(
      'upstreams: {}\nllm: { providers: { a: { baseUrl: "http://127.0.0.1:1/v1" } }, transcripts: {} }',
      'x.yaml',
      {},
    );
    expect(config.llm?.transcripts).toMatchObject({
      store: 'sqlite',
      interval: 200,
      minChars: 1024,
      persistDeltas: true,
    });
  });
});
