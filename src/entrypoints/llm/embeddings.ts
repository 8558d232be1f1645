// OpenAI embeddings (`POST /v1/embeddings`): request validation, what an input's cache key covers, batch bodies and their split.
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
   * (whom the provider attributes the call to). The caller's identity is the batcher's to add.
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
 * What makes one input's embedding what it is, for the exact-match cache key: model, dimensions,
 * encoding and the input itself (`user` only attributes the call; the caller's scope is the key's).
 */
export function embeddingIdentity(request: EmbeddingRequest, input: EmbeddingInput): unknown[] {
  return [request.model, request.dimensions ?? null, request.encoding, input];
}

/**
 * One upstream body for `inputs` of requests sharing `request`'s `batchKey`, in order, with `model` the
 * provider's id for it. The reply is split back with `splitEmbeddings`.
 */
export function batchBody(
  providerModel: string,
  request: EmbeddingRequest,
  inputs: readonly EmbeddingInput[],
): Buffer {
  const body: Record<string, unknown> = { model: providerModel, input: inputs };
  if (request.dimensions !== undefined) body.dimensions = request.dimensions;
  body.encoding_format = request.encoding;
  if (request.user !== undefined) body.user = request.user;
  return Buffer.from(JSON.stringify(body));
}

/** One input's share of an embeddings reply. */
export interface SplitEmbeddings {
  /** The reply's `model` (the provider's name for it). */
  model: string | undefined;
  /** Each input's embedding as JSON text (a float array, or a base64 string), in input order. */
  vectors: Buffer[];
  /**
   * Each input's share of `usage.prompt_tokens`, proportional to its length (the shares add up to the
   * total); undefined when the reply reports no usage.
   */
  tokens: number[] | undefined;
}

interface EmbeddingItem {
  index?: unknown;
  embedding?: unknown;
}

/** An input's size for sharing out usage: its characters, or its token count. */
function weight(input: EmbeddingInput): number {
  return Math.max(1, input.length);
}

/**
 * Splits the reply to `batchBody(..., inputs)` into one embedding per input, by `index` (not order).
 * Throws `GW_UPSTREAM_PROTOCOL` when the reply is not an embeddings list holding exactly one embedding
 * per input.
 */
export function splitEmbeddings(body: Buffer, inputs: readonly EmbeddingInput[]): SplitEmbeddings {
  let parsed: { data?: unknown; model?: unknown; usage?: { prompt_tokens?: unknown } };
  try {
    parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
  } catch (error) {
    throw new GatewayError('GW_UPSTREAM_PROTOCOL', 'the embeddings reply is not JSON', { cause: error });
  }
  const expected = inputs.length;
  if (!Array.isArray(parsed.data) || parsed.data.length !== expected) {
    throw new GatewayError(
      'GW_UPSTREAM_PROTOCOL',
      `the embeddings reply holds ${Array.isArray(parsed.data) ? parsed.data.length : 'no'} embeddings for ${expected} inputs`,
    );
  }
  const vectors = new Array<Buffer>(expected);
  for (const item of parsed.data as EmbeddingItem[]) {
    const index = item?.index;
    if (
      typeof index !== 'number' ||
      !Number.isInteger(index) ||
      index < 0 ||
      index >= expected ||
      vectors[index] !== undefined ||
      item.embedding === undefined
    ) {
      throw new GatewayError('GW_UPSTREAM_PROTOCOL', 'the embeddings reply has a missing or repeated index');
    }
    vectors[index] = Buffer.from(JSON.stringify(item.embedding));
  }
  const total = parsed.usage?.prompt_tokens;
  let tokens: number[] | undefined;
  if (typeof total === 'number') {
    const weights = inputs.map(weight);
    const all = weights.reduce((a, b) => a + b, 0);
    let given = 0;
    tokens = weights.map((w, i) => {
      const share = i === weights.length - 1 ? total - given : Math.round((total * w) / all);
      given += share;
      return share;
    });
  }
  return { model: typeof parsed.model === 'string' ? parsed.model : undefined, vectors, tokens };
}

/** The embeddings format: never streamed, never transcribed; usage is `prompt_tokens`. */
export const embeddingsFormat: LlmFormat = {
  name: 'embeddings',
  providerTypes: new Set(['openai']),
  upstreamPath: '/embeddings',

  readRequest(body): LlmRequest {
    const { model } = readEmbeddingRequest(body);
    return { model, stream: false, conversation: undefined, turn: [], continues: undefined, tapped: true };
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
