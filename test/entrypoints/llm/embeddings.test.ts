import { describe, expect, it } from 'vitest';
import { embeddingOf } from '../../../emulators/llm.js';
import { embeddingsReply } from '../../../emulators/llm/embeddings.js';
import {
  batchBody,
  embeddingCacheKey,
  embeddingsFormat,
  readEmbeddingRequest,
  splitBatchReply,
} from '../../../src/entrypoints/llm/embeddings.js';

describe('the embeddings format', () => {
  it('reads a string, a token list, and an array of either as inputs', () => {
    expect(readEmbeddingRequest({ model: 'e', input: 'a' })).toMatchObject({
      inputs: ['a'],
      single: true,
      encoding: 'float',
    });
    expect(readEmbeddingRequest({ model: 'e', input: [1, 2] })).toMatchObject({
      inputs: [[1, 2]],
      single: true,
    });
    expect(readEmbeddingRequest({ model: 'e', input: ['a', [3]], encoding_format: 'base64' })).toMatchObject({
      inputs: ['a', [3]],
      single: false,
      encoding: 'base64',
    });
  });

  it('refuses empty, mixed-up or oversized inputs and bad options with GW_BAD_REQUEST naming the field', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ model: 'e', input: [] }, '"input"'],
      [{ model: 'e', input: ['a', 5] }, '"input[1]"'],
      [{ model: 'e', input: Array.from({ length: 2049 }, () => 'x') }, 'at most 2048'],
      [{ model: 'e', input: 'a', dimensions: 0 }, '"dimensions"'],
      [{ model: 'e', input: 'a', encoding_format: 'int8' }, '"encoding_format"'],
      [{ input: 'a' }, '"model"'],
    ];
    for (const [body, field] of cases) {
      expect(() => readEmbeddingRequest(body)).toThrow(
        expect.objectContaining({ code: 'GW_BAD_REQUEST' }) as Error,
      );
      expect(() => readEmbeddingRequest(body)).toThrow(field);
    }
  });

  it('shares a batch key only between requests that may share an upstream call', () => {
    const key = (body: Record<string, unknown>) =>
      readEmbeddingRequest({ model: 'e', input: 'x', ...body }).batchKey;
    expect(key({ input: 'y' })).toBe(key({}));
    expect(key({ encoding_format: 'float' })).toBe(key({}));
    expect(key({ dimensions: 8 })).not.toBe(key({}));
    expect(key({ encoding_format: 'base64' })).not.toBe(key({}));
    expect(key({ model: 'f' })).not.toBe(key({}));
    expect(key({ user: 'u' })).not.toBe(key({}));
  });

  it('keys the cache by model, dimensions, encoding and input', () => {
    const a = readEmbeddingRequest({ model: 'e', input: 'x' });
    const b = readEmbeddingRequest({ model: 'e', input: 'x', dimensions: 4 });
    expect(embeddingCacheKey(a, 'x')).toBe(
      embeddingCacheKey(readEmbeddingRequest({ model: 'e', input: ['z', 'x'] }), 'x'),
    );
    expect(embeddingCacheKey(a, 'x')).not.toBe(embeddingCacheKey(b, 'x'));
    expect(embeddingCacheKey(a, 'x')).not.toBe(embeddingCacheKey(a, 'y'));
    expect(embeddingCacheKey(a, [1])).not.toBe(embeddingCacheKey(a, '[1]'));
  });

  it('batches requests into one body and splits the reply so each caller gets its own vectors and a share of usage', () => {
    const requests = [
      readEmbeddingRequest({ model: 'alias', input: 'alpha', dimensions: 8 }),
      readEmbeddingRequest({ model: 'alias', input: ['b', 'gamma'], dimensions: 8 }),
      readEmbeddingRequest({ model: 'alias', input: 'delta', dimensions: 8 }),
    ];
    const body = JSON.parse(batchBody('text-embedding-3-small', requests).toString()) as Record<
      string,
      unknown
    >;
    expect(body).toEqual({
      model: 'text-embedding-3-small',
      input: ['alpha', 'b', 'gamma', 'delta'],
      dimensions: 8,
      encoding_format: 'float',
    });
    const texts = body.input as string[];
    const upstream = embeddingsReply(texts, 'text-embedding-3-small', 8, false) as {
      data: unknown[];
      usage: { prompt_tokens: number };
    };
    upstream.data.reverse(); // indexes, not order, say which input a vector belongs to
    const replies = splitBatchReply(Buffer.from(JSON.stringify(upstream)), requests).map(
      (r) =>
        JSON.parse(r.toString()) as {
          data: Array<{ index: number; embedding: number[] }>;
          usage: { prompt_tokens: number };
        },
    );
    expect(replies.map((r) => r.data.map((d) => d.embedding))).toEqual([
      [embeddingOf('alpha', 8)],
      [embeddingOf('b', 8), embeddingOf('gamma', 8)],
      [embeddingOf('delta', 8)],
    ]);
    expect(replies[1]!.data.map((d) => d.index)).toEqual([0, 1]);
    expect(replies.reduce((sum, r) => sum + r.usage.prompt_tokens, 0)).toBe(upstream.usage.prompt_tokens);
  });

  it('refuses to split a reply that does not hold one embedding per input', () => {
    const requests = [
      readEmbeddingRequest({ model: 'e', input: 'a' }),
      readEmbeddingRequest({ model: 'e', input: 'b' }),
    ];
    const short = JSON.stringify(embeddingsReply(['a'], 'e', 4, false));
    expect(() => splitBatchReply(Buffer.from(short), requests)).toThrow(
      expect.objectContaining({ code: 'GW_UPSTREAM_PROTOCOL' }) as Error,
    );
    const repeated = embeddingsReply(['a', 'b'], 'e', 4, false) as { data: Array<{ index: number }> };
    repeated.data[1]!.index = 0;
    expect(() => splitBatchReply(Buffer.from(JSON.stringify(repeated)), requests)).toThrow('repeated index');
  });

  it('reads usage from a reply and never streams or transcribes', () => {
    expect(embeddingsFormat.readRequest({ model: 'e', input: 'x', stream: true })).toMatchObject({
      stream: false,
      turn: [],
    });
    const reply = Buffer.from(JSON.stringify(embeddingsReply(['abcdefgh'], 'e', 4, true)));
    expect(embeddingsFormat.readReply(reply)).toEqual({ text: undefined, usage: { inputTokens: 2 } });
  });
});
