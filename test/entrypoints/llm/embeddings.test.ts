import { describe, expect, it } from 'vitest';
import { embeddingOf } from '../../../emulators/llm.js';
import { embeddingsReply } from '../../../emulators/llm/embeddings.js';
import {
  batchBody,
  embeddingIdentity,
  embeddingsFormat,
  readEmbeddingRequest,
  splitEmbeddings,
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

  it('keys the cache by model, dimensions, encoding and input, not by user', () => {
    const key = (body: Record<string, unknown>, input: string | number[]) =>
      JSON.stringify(embeddingIdentity(readEmbeddingRequest({ model: 'e', input: 'x', ...body }), input));
    expect(key({}, 'x')).toBe(key({ input: ['z', 'x'] }, 'x'));
    expect(key({}, 'x')).toBe(key({ user: 'u' }, 'x'));
    expect(key({}, 'x')).not.toBe(key({ dimensions: 4 }, 'x'));
    expect(key({}, 'x')).not.toBe(key({ encoding_format: 'base64' }, 'x'));
    expect(key({}, 'x')).not.toBe(key({ model: 'f' }, 'x'));
    expect(key({}, 'x')).not.toBe(key({}, 'y'));
    expect(key({}, [1])).not.toBe(key({}, '[1]'));
  });

  it('batches inputs into one body and splits the reply by index, each input its own vector and a share of usage', () => {
    const request = readEmbeddingRequest({ model: 'alias', input: 'alpha', dimensions: 8, user: 'u' });
    const inputs = ['alpha', 'b', 'gamma', 'delta'];
    const body = JSON.parse(batchBody('text-embedding-3-small', request, inputs).toString()) as Record<
      string,
      unknown
    >;
    expect(body).toEqual({
      model: 'text-embedding-3-small',
      input: inputs,
      dimensions: 8,
      encoding_format: 'float',
      user: 'u',
    });
    const upstream = embeddingsReply(inputs, 'text-embedding-3-small', 8, false) as {
      data: unknown[];
      usage: { prompt_tokens: number };
    };
    upstream.data.reverse(); // indexes, not order, say which input a vector belongs to
    const split = splitEmbeddings(Buffer.from(JSON.stringify(upstream)), inputs);
    expect(split.model).toBe('text-embedding-3-small');
    expect(split.vectors.map((v) => JSON.parse(v.toString()) as number[])).toEqual(
      inputs.map((text) => embeddingOf(text, 8)),
    );
    expect(split.tokens!.reduce((a, b) => a + b, 0)).toBe(upstream.usage.prompt_tokens);
    const base64 = embeddingsReply(['alpha'], 'e', 4, true) as { data: Array<{ embedding: string }> };
    expect(
      JSON.parse(splitEmbeddings(Buffer.from(JSON.stringify(base64)), ['alpha']).vectors[0]!.toString()),
    ).toBe(base64.data[0]!.embedding);
  });

  it('refuses to split a reply that does not hold one embedding per input', () => {
    const short = JSON.stringify(embeddingsReply(['a'], 'e', 4, false));
    expect(() => splitEmbeddings(Buffer.from(short), ['a', 'b'])).toThrow(
      expect.objectContaining({ code: 'GW_UPSTREAM_PROTOCOL' }) as Error,
    );
    const repeated = embeddingsReply(['a', 'b'], 'e', 4, false) as { data: Array<{ index: number }> };
    repeated.data[1]!.index = 0;
    expect(() => splitEmbeddings(Buffer.from(JSON.stringify(repeated)), ['a', 'b'])).toThrow(
      'repeated index',
    );
    expect(() => splitEmbeddings(Buffer.from('not json'), ['a'])).toThrow('not JSON');
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
