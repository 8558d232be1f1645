import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { expectedContent, startLlmEmulator } from '../../emulators/llm.js';
import type { LlmEmulatorOptions, RunningLlmEmulator } from '../../emulators/llm.js';
import { spawnCli, stopAll } from '../helpers/processes.js';
import { contentOf } from '../helpers/sse.js';

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

function chat(url: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  return request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'emu-small', messages: [{ role: 'user', content: 'hi' }], ...body }),
  });
}

describe('LLM emulator', () => {
  it('streams deterministic tokens as chat.completion.chunk events ending with [DONE]', async () => {
    const emulator = await start({ tokens: 5 });
    const response = await chat(emulator.url, { stream: true });
    expect(response.headers['content-type']).toContain('text/event-stream');
    const text = await response.body.text();
    expect(contentOf(text)).toBe('tok0 tok1 tok2 tok3 tok4');
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(emulator.stats()).toMatchObject({ streams: 1, completedStreams: 1, completionTokens: 5 });
  });

  it('answers a non-streaming completion with the same content and usage', async () => {
    const emulator = await start({ tokens: 3 });
    const response = await chat(emulator.url, { model: 'x', max_tokens: 2 });
    const body = (await response.body.json()) as {
      model: string;
      choices: Array<{ message: { content: string } }>;
      usage: { completion_tokens: number };
    };
    expect(body.model).toBe('x');
    expect(body.choices[0]!.message.content).toBe(expectedContent(2));
    expect(body.usage.completion_tokens).toBe(2);
  });

  it('sends a usage chunk when stream_options.include_usage is set', async () => {
    const emulator = await start({ tokens: 2 });
    const text = await (
      await chat(emulator.url, { stream: true, stream_options: { include_usage: true } })
    ).body.text();
    expect(text).toContain('"usage":{"prompt_tokens"');
  });

  it('paces tokens by the gap and records when each chunk was written', async () => {
    const emulator = await start({ tokens: 3, gap: '30ms' });
    const response = await chat(emulator.url, { stream: true }, { 'x-request-id': 'r1' });
    await response.body.dump();
    const timeline = emulator.timeline('r1')!;
    expect(timeline).toHaveLength(5); // role, three tokens, finish
    expect(timeline[3]! - timeline[1]!).toBeGreaterThanOrEqual(55);
  });

  it('injects 429 with Retry-After before any byte', async () => {
    const emulator = await start({ errorRate: 1, errorStatus: 429, retryAfterS: 2 });
    const response = await chat(emulator.url, { stream: true });
    await response.body.dump();
    expect(response.statusCode).toBe(429);
    expect(response.headers['retry-after']).toBe('2');
    expect(emulator.stats().errors).toBe(1);
  });

  it('stalls a stream after N tokens and counts it aborted when the client leaves', async () => {
    const emulator = await start({ tokens: 10, hangAfter: 2 });
    const response = await chat(emulator.url, { stream: true });
    let received = '';
    const reading = (async () => {
      for await (const chunk of response.body) received += (chunk as Buffer).toString();
    })().catch(() => undefined);
    // The emulator says it stalled, and everything it wrote before stalling has arrived.
    await expect.poll(() => emulator.stats().hangs === 1 && received.includes('tok1')).toBe(true);
    expect(contentOf(received)).toBe('tok0 tok1');
    response.body.destroy();
    await reading;
    await expect.poll(() => emulator.stats().abortedStreams).toBe(1);
    expect(emulator.stats()).toMatchObject({ hangs: 1, completedStreams: 0 });
  });

  it('splits x-emulate-text into tokens, escaping them as JSON', async () => {
    const emulator = await start();
    const text = 'say "hi"\nand ünïcode \\ ok';
    const sse = await (
      await chat(emulator.url, { stream: true }, { 'x-emulate-text': encodeURIComponent(text) })
    ).body.text();
    expect(contentOf(sse)).toBe(text);
  });

  it('lists models and serves stats and timelines over HTTP', async () => {
    const emulator = await start({ models: ['a', 'b'] });
    const models = (await (await request(`${emulator.url}/v1/models`)).body.json()) as {
      data: Array<{ id: string }>;
    };
    expect(models.data.map((m) => m.id)).toEqual(['a', 'b']);
    await (await chat(emulator.url, { stream: true }, { 'x-request-id': 'r2' })).body.dump();
    const stats = (await (await request(`${emulator.url}/__emulator/stats`)).body.json()) as Record<
      string,
      unknown
    >;
    expect(stats).toMatchObject({ requests: 1, completedStreams: 1 });
    const timeline = await request(`${emulator.url}/__emulator/timeline/r2`);
    expect(((await timeline.body.json()) as number[]).length).toBeGreaterThan(2);
  });

  it('runs as `slipstream emulate llm` and prints its listening line', async () => {
    const child = await spawnCli(['emulate', 'llm', '--tokens', '2']);
    const text = await (await chat(child.url, { stream: true })).body.text();
    expect(contentOf(text)).toBe('tok0 tok1');
  });
});
