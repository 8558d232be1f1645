// Embeddings through Slipstream: concurrent single inputs batched into few upstream calls, cached per input and per caller.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { embeddingOf, startLlmEmulator } from '../../emulators/llm.js';
import type { RunningLlmEmulator } from '../../emulators/llm.js';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { openaiClient } from '../helpers/llm-clients.js';

let emulator: RunningLlmEmulator;
let gw: RunningGateway;

beforeAll(async () => {
  emulator = await startLlmEmulator();
  gw = await startGateway(`
upstreams: {}
llm:
  providers:
    one:
      baseUrl: ${emulator.url}/v1
      models: { embed: emu-embed }
  # 4x the default window: a loaded 2-core CI machine spreads 100 "concurrent" arrivals over tens of ms.
  embeddings: { batch: { window: 20ms } }
`);
});
afterAll(async () => {
  await gw?.close();
  await emulator?.close();
});
beforeEach(() => emulator.reset());

/** One `POST /v1/embeddings` as `caller` (the principal header, `authorization` by default). */
async function embed(caller: string, input: unknown, extra: Record<string, unknown> = {}) {
  return call(`${gw.url}/v1/embeddings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${caller}` },
    body: JSON.stringify({ model: 'embed', input, encoding_format: 'float', ...extra }),
  });
}

describe('embeddings through Slipstream', () => {
  it('sends 100 concurrent single-input requests as at most 3 upstream calls, each caller getting its own vector', async () => {
    // A client's keep-alive connections are open once it has run: the burst below is 100 requests in
    // flight at once, not 100 TCP handshakes (which spread the arrivals over hundreds of ms here).
    await Promise.all(Array.from({ length: 100 }, () => call(`${gw.url}/v1/models`)));
    const texts = Array.from({ length: 100 }, (_, i) => `text number ${i}`);
    const replies = await Promise.all(texts.map((text) => embed('alice', text)));
    replies.forEach((reply, i) => {
      expect(reply.status).toBe(200);
      expect(reply.body.data).toEqual([
        { object: 'embedding', index: 0, embedding: embeddingOf(texts[i]!, 32) },
      ]);
      expect(reply.body.model).toBe('emu-embed');
    });
    const stats = emulator.stats();
    expect(stats.embeddingInputs).toBe(100);
    expect(stats.surfaces.embeddings.requests).toBeLessThanOrEqual(3);
    // Usage is shared out among the callers of a batch: the shares add up to what the provider billed.
    const billed = texts.reduce((sum, text) => sum + Math.ceil(text.length / 4), 0);
    expect(replies.reduce((sum, r) => sum + (r.body.usage.prompt_tokens as number), 0)).toBe(billed);
  });

  it('serves a repeated input from the cache, through the real openai SDK too (base64, decoded by the SDK)', async () => {
    const first = await embed('alice', 'repeat me');
    expect(first.headers['x-slipstream-cache']).toBe('miss');
    const again = await embed('alice', 'repeat me');
    expect(again.headers['x-slipstream-cache']).toBe('hit');
    expect(again.body.data[0].embedding).toEqual(first.body.data[0].embedding);
    expect(again.body.usage.prompt_tokens).toBe(0); // nothing was sent upstream for it
    const sdk = openaiClient(gw.url, { apiKey: 'alice' });
    const decoded = await sdk.embeddings.create({ model: 'embed', input: ['repeat me base64'] });
    const cached = await sdk.embeddings.create({ model: 'embed', input: ['repeat me base64'] });
    expect(cached.data[0]!.embedding).toEqual(decoded.data[0]!.embedding);
    expect(cached.data[0]!.embedding).toEqual(embeddingOf('repeat me base64', 32));
    expect(emulator.stats().surfaces.embeddings.requests).toBe(2);
  });

  it('caches each input of a multi-input request, so a later request only sends the new ones', async () => {
    await embed('alice', ['a1', 'a2']);
    const partial = await embed('alice', ['a2', 'a3', 'a1']);
    expect(partial.headers['x-slipstream-cache']).toBe('partial');
    expect(partial.body.data.map((d: { embedding: number[] }) => d.embedding)).toEqual([
      embeddingOf('a2', 32),
      embeddingOf('a3', 32),
      embeddingOf('a1', 32),
    ]);
    expect(partial.body.data.map((d: { index: number }) => d.index)).toEqual([0, 1, 2]);
    expect(emulator.stats().embeddingInputs).toBe(3);
  });

  it("never gives one caller another caller's entry", async () => {
    await embed('alice', 'private text');
    const bob = await embed('bob', 'private text');
    expect(bob.headers['x-slipstream-cache']).toBe('miss');
    expect(emulator.stats().surfaces.embeddings.requests).toBe(2);
  });

  it('keys the cache by dimensions and encoding as well as the input', async () => {
    await embed('alice', 'shape');
    const smaller = await embed('alice', 'shape', { dimensions: 8 });
    expect(smaller.headers['x-slipstream-cache']).toBe('miss');
    expect(smaller.body.data[0].embedding).toEqual(embeddingOf('shape', 8));
    const base64 = await embed('alice', 'shape', { encoding_format: 'base64' });
    expect(base64.headers['x-slipstream-cache']).toBe('miss');
    expect(typeof base64.body.data[0].embedding).toBe('string');
  });

  it("never puts two callers' inputs in one upstream call", async () => {
    const texts = Array.from({ length: 10 }, (_, i) => `mixed ${i}`);
    await Promise.all(texts.flatMap((text) => [embed('alice', text), embed('bob', text)]));
    expect(emulator.stats()).toMatchObject({
      embeddingInputs: 20,
      surfaces: { embeddings: { requests: 2 } },
    });
  });

  it("gives the caller of a refused input the provider's 400, and the callers batched with it their vectors", async () => {
    const texts = Array.from({ length: 9 }, (_, i) => `fine ${i}`);
    const tooLong = 'x'.repeat(40_000);
    const [refused, ...fine] = await Promise.all([
      embed('alice', tooLong),
      ...texts.map((text) => embed('alice', text)),
    ]);
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('context_length_exceeded');
    expect(refused.body.error.message).toContain('maximum context length is 8192 tokens');
    fine.forEach((reply, i) => expect(reply.body.data[0].embedding).toEqual(embeddingOf(texts[i]!, 32)));
    // The refusal is never cached: the same input is asked again.
    const before = emulator.stats().surfaces.embeddings.requests;
    expect((await embed('alice', tooLong)).status).toBe(400);
    expect(emulator.stats().surfaces.embeddings.requests).toBe(before + 1);
  });

  it('answers a model no provider serves with 404 in OpenAI shape, and a bad input with 400', async () => {
    const unknown = await call(`${gw.url}/v1/embeddings`, {
      method: 'POST',
      body: JSON.stringify({ model: 'constructor', input: 'x' }),
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'GW_LLM_NO_PROVIDER', type: 'invalid_request_error' });
    const bad = await embed('alice', [1.5]);
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('GW_BAD_REQUEST');
    expect(emulator.stats().requests).toBe(0);
  });
});
