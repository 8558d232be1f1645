// OpenAI embeddings (`POST /v1/embeddings`): request validation, cache keys, and batching single inputs into one call.
import { GatewayError } from '../../errors.js';
import { badRequest, requireModel } from './format.js';
import type { LlmFormat, LlmRequest, ReplyContent } from './format.js';
import { openaiErrorReply } from './openai-errors.js';

/** One input: a text, or a list of token ids. */
export type EmbeddingInput = string | number[];

/** OpenAI's limit on inputs per request. */
const MAX_INPUTS = 2048;
const MAX_DIMENSIONS = 65_536;

/** An embeddings request, validated. */
export interface EmbeddingRequest {
  model: string;
  inputs: EmbeddingInput[];
  /** `input` was one item, not an array (its reply holds one embedding either way). */
  single: boolean;
  dimensions: number | undefined;
  /** `float` when the client sent no `encoding_format` (the API's default). */
  encoding: 'float' | 'base64';
  user: string | undefined;
  /**
   * Requests with equal keys may share one upstream call: same model, dimensions, encoding and `user`
   * (whom the provider attributes the call to). The caller's identity is the batch policy's to add.
   */
  batchKey: string;
}

function isTokens(value: unknown): value is number[] {
  return (
    Array.isArray(value) && value.length > 0 && value.every((t) => Number.isInteger(t) && (t as number) >= 0)
  );
}

/** Reads `input`: a string, a token list, or a non-empty array of either; GW_BAD_REQUEST otherwise. */
function readInputs(input: unknown): { inputs: EmbeddingInput[]; single: boolean } {
  if (typeof input === 'string') return { inputs: [input], single: true };
  if (isTokens(input)) return { inputs: [input], single: true };
  if (!Array.isArray(input) || input.length === 0) {
    throw badRequest('"input" must be a string, an array of strings, or token id arrays, and not empty');
  }
  if (input.length > MAX_INPUTS) throw badRequest(`"input" has ${input.length} items; at most ${MAX_INPUTS}`);
  input.forEach((item: unknown, i) => {
    if (typeof item !== 'string' && !isTokens(item)) {
      throw badRequest(`"input[${i}]" must be a string or an array of token ids`);
    }
  });
  return { inputs: input as EmbeddingInput[], single: false };
}

/** Validates an embeddings request body. Throws GatewayError `GW_BAD_REQUEST` naming the bad field. */
export function readEmbeddingRequest(body: Record<string, unknown>): EmbeddingRequest {
  const model = requireModel(body);
  const { inputs, single } = readInputs(body.input);
  const { dimensions, encoding_format: format, user } = body;
  if (
    dimensions !== undefined &&
    !(
      typeof dimensions === 'number' &&
      Number.isInteger(dimensions) &&
      dimensions >= 1 &&
      dimensions <= MAX_DIMENSIONS
    )
  ) {
    throw badRequest('"dimensions" must be a positive integer');
  }
  if (format !== undefined && format !== 'float' && format !== 'base64') {
    throw badRequest('"encoding_format" must be "float" or "base64"');
  }
  if (user !== undefined && typeof user !== 'string') throw badRequest('"user" must be a string');
  const encoding = format ?? 'float';
  return {
    model,
    inputs,
    single,
    dimensions,
    encoding,
    user,
    batchKey: JSON.stringify([model, dimensions ?? null, encoding, user ?? null]),
  };
}

/**
 * The exact-match cache key of one input of `request`: model, dimensions, encoding and the input
 * itself (the caller's scope is the cache policy's to add).
 */
export function embeddingCacheKey(request: EmbeddingRequest, input: EmbeddingInput): string {
  return JSON.stringify([request.model, request.dimensions ?? null, request.encoding, input]);
}

/**
 * One upstream body for requests that share a `batchKey`: every input in order, with `model` the
 * provider's id for it. The reply is split back with `splitBatchReply`.
 */
export function batchBody(providerModel: string, requests: readonly EmbeddingRequest[]): Buffer {
  const first = requests[0];
  if (first === undefined) throw new RangeError('batchBody needs at least one request');
  const body: Record<string, unknown> = { model: providerModel, input: requests.flatMap((r) => r.inputs) };
  if (first.dimensions !== undefined) body.dimensions = first.dimensions;
  body.encoding_format = first.encoding;
  if (first.user !== undefined) body.user = first.user;
  return Buffer.from(JSON.stringify(body));
}

interface EmbeddingItem {
  object?: unknown;
  index?: unknown;
  embedding?: unknown;
}

/** An input's size for sharing out usage: its characters, or its token count. */
function weight(input: EmbeddingInput): number {
  return Math.max(1, input.length);
}

/**
 * Splits the reply to `batchBody(requests)` into one reply body per request, in order: each holds
 * its own embeddings re-indexed from 0, the reply's `model`, and a share of `usage` proportional to
 * its inputs' length (the shares add up to the total). Throws `GW_UPSTREAM_PROTOCOL` when the reply
 * is not an embeddings list with one embedding per input.
 */
export function splitBatchReply(body: Buffer, requests: readonly EmbeddingRequest[]): Buffer[] {
  let parsed: {
    data?: unknown;
    model?: unknown;
    usage?: { prompt_tokens?: unknown; total_tokens?: unknown };
  };
  try {
    parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
  } catch (error) {
    throw new GatewayError('GW_UPSTREAM_PROTOCOL', 'the embeddings reply is not JSON', { cause: error });
  }
  const expected = requests.reduce((n, r) => n + r.inputs.length, 0);
  if (!Array.isArray(parsed.data) || parsed.data.length !== expected) {
    throw new GatewayError(
      'GW_UPSTREAM_PROTOCOL',
      `the embeddings reply holds ${Array.isArray(parsed.data) ? parsed.data.length : 'no'} embeddings for ${expected} inputs`,
    );
  }
  const byIndex = new Array<EmbeddingItem | undefined>(expected);
  for (const item of parsed.data as EmbeddingItem[]) {
    const index = item?.index;
    if (
      typeof index !== 'number' ||
      !Number.isInteger(index) ||
      index < 0 ||
      index >= expected ||
      byIndex[index]
    ) {
      throw new GatewayError('GW_UPSTREAM_PROTOCOL', 'the embeddings reply has a missing or repeated index');
    }
    byIndex[index] = item;
  }
  const total = typeof parsed.usage?.prompt_tokens === 'number' ? parsed.usage.prompt_tokens : undefined;
  const weights = requests.map((r) => r.inputs.reduce((sum, input) => sum + weight(input), 0));
  const allWeight = weights.reduce((a, b) => a + b, 0);
  let at = 0;
  let given = 0;
  return requests.map((request, r) => {
    const data = request.inputs.map((_, i) => ({ ...byIndex[at + i], index: i }));
    at += request.inputs.length;
    let tokens: number | undefined;
    if (total !== undefined) {
      tokens = r === requests.length - 1 ? total - given : Math.round((total * weights[r]!) / allWeight);
      given += tokens;
    }
    return Buffer.from(
      JSON.stringify({
        object: 'list',
        data,
        model: parsed.model,
        ...(tokens === undefined ? {} : { usage: { prompt_tokens: tokens, total_tokens: tokens } }),
      }),
    );
  });
}

/** The embeddings format: never streamed, never transcribed; usage is `prompt_tokens`. */
export const embeddingsFormat: LlmFormat = {
  name: 'embeddings',
  providerTypes: new Set(['openai']),
  upstreamPath: '/embeddings',

  readRequest(body): LlmRequest {
    const { model } = readEmbeddingRequest(body);
    return { model, stream: false, conversation: undefined, turn: [], continues: undefined };
  },

  readReply(body): ReplyContent {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { usage?: { prompt_tokens?: unknown } };
      const tokens = parsed.usage?.prompt_tokens;
      return { text: undefined, usage: typeof tokens === 'number' ? { inputTokens: tokens } : undefined };
    } catch {
      return { text: undefined, usage: undefined };
    }
  },

  errorBody: openaiErrorReply,
};
