// Batching embeddings: concurrent inputs of one caller for one model go upstream as one call with an input array.
import DataLoader from 'dataloader';
import { LRUCache } from 'lru-cache';
import { GatewayError } from '../../errors.js';
import { stripHopByHop } from '../../pipeline/headers.js';
import { untilAborted } from '../../pipeline/until-aborted.js';
import type { Call, Handler, Headers, HttpRequest, Reply } from '../../pipeline/types.js';
import { bodyError, firstAnswer } from '../../streams/llm-relay.js';
import type { Answer, RelayTarget } from '../../streams/llm-relay.js';
import { events, publish } from '../../telemetry/events.js';
import { batchBody, splitEmbeddings } from './embeddings.js';
import type { EmbeddingInput, EmbeddingRequest } from './embeddings.js';

/** One input on its way to the provider: the payload of an embeddings item call. */
export interface EmbeddingItem {
  /** The request the input came in (model, dimensions, encoding, `user`, its batch key). */
  readonly request: EmbeddingRequest;
  readonly input: EmbeddingInput;
  /** The model's targets: its provider, then its fallbacks. */
  readonly targets: readonly RelayTarget[];
  /** Headers for the provider (the client's credentials already removed). */
  readonly upstreamHeaders: Headers;
}

/** An item call as the cache policy sees it too (`POST /embeddings/<model>`, keyed by the input). */
export type EmbeddingItemCall = Call<EmbeddingItem & HttpRequest>;

export interface EmbeddingBatcherOptions {
  /** How long a batch collects inputs after its first, in ms; 0: only inputs loaded in the same tick. */
  windowMs: number;
  /** Most distinct inputs per upstream call (OpenAI accepts 2,048). */
  maxBatch: number;
  /** Largest upstream reply read, in bytes. */
  maxResponseBytes: number;
}

/** Headers of an item reply that carry what the endpoint needs beside the vector (kept with cache entries). */
export const MODEL_HEADER = 'x-slipstream-embedding-model';
export const TOKENS_HEADER = 'x-slipstream-embedding-tokens';

/** Batch groups (caller × model × options) kept at once; the least recently used is dropped. */
const MAX_GROUPS = 10_000;
const ROUTE = 'llm:embeddings';

/**
 * The handler at the bottom of an embeddings item's stack. It collects item calls with the same caller
 * (`principal`: the cache scope, so one caller's inputs never travel with another's) and batch key for
 * `windowMs` (or up to `maxBatch` distinct inputs) and sends them as one upstream call, through
 * `firstAnswer` (the model's providers with fallback before the first byte, each through its stack).
 * Equal inputs in a batch are sent once. Each caller gets a 200 whose body is its input's embedding as
 * JSON (with the provider's model name and the input's share of the usage in `MODEL_HEADER` /
 * `TOKENS_HEADER`). A provider failure (after its retries and fallbacks) fails every caller of the batch
 * with the same gateway error. A refusal (a 4xx about the request, e.g. one input too long) is narrowed
 * down by halving the batch, within a budget of extra calls, so that the other callers still get their
 * vectors; each refused caller gets the provider's status and body as they are (`no-store`). The upstream
 * call is aborted only once every caller of the batch has left.
 */
export function embeddingBatcher(options: EmbeddingBatcherOptions): Handler<EmbeddingItem & HttpRequest> {
  const loaders = new LRUCache<string, DataLoader<EmbeddingItemCall, Reply, EmbeddingItemCall>>({
    max: MAX_GROUPS,
  });
  const schedule =
    options.windowMs > 0 ? (dispatch: () => void) => void setTimeout(dispatch, options.windowMs) : undefined;
  const loaderFor = (group: string) => {
    let loader = loaders.get(group);
    if (loader === undefined) {
      loader = new DataLoader<EmbeddingItemCall, Reply, EmbeddingItemCall>((batch) => sendBatch(batch), {
        cache: false,
        maxBatchSize: options.maxBatch,
        ...(schedule === undefined ? {} : { batchScheduleFn: schedule }),
      });
      loaders.set(group, loader);
    }
    return loader;
  };

  /** One upstream call (or a few, narrowing a refusal) for a batch; one reply or error per caller, in order. */
  async function sendBatch(batch: readonly EmbeddingItemCall[]): Promise<Array<Reply | Error>> {
    const slots = new Map<string, number>();
    const inputs: EmbeddingInput[] = [];
    const slotOf = batch.map((call) => {
      const identity = typeof call.input === 'string' ? call.input : JSON.stringify(call.input);
      let slot = slots.get(identity);
      if (slot === undefined) {
        slot = inputs.length;
        slots.set(identity, slot);
        inputs.push(call.input);
      }
      return slot;
    });
    publish(events.batch, { route: ROUTE, callers: batch.length, items: inputs.length });
    // The call belongs to no single caller: it is aborted only when every caller has gone.
    const controller = new AbortController();
    let waiting = batch.length;
    const onLeave = () => {
      if (--waiting === 0)
        controller.abort(new GatewayError('GW_CLIENT_CLOSED', 'every caller of the batch left'));
    };
    for (const call of batch) call.signal.addEventListener('abort', onLeave, { once: true });
    try {
      const budget = { calls: 2 * Math.ceil(Math.log2(Math.max(2, inputs.length))) };
      const replies = await fetchInputs(batch[0]!, inputs, controller.signal, budget);
      return slotOf.map((slot) => replies[slot]!);
    } catch (error) {
      return batch.map(() => (error instanceof Error ? error : new Error(String(error))));
    } finally {
      for (const call of batch) call.signal.removeEventListener('abort', onLeave);
    }
  }

  /** Embeds `inputs` in one call; a refusal of several is split in halves while `budget` allows. */
  async function fetchInputs(
    first: EmbeddingItemCall,
    inputs: readonly EmbeddingInput[],
    signal: AbortSignal,
    budget: { calls: number },
  ): Promise<Reply[]> {
    const startedAt = performance.now();
    const answer = await firstAnswer({
      ctx: first.ctx,
      signal,
      principal: first.principal,
      targets: first.targets,
      method: 'POST',
      path: '/embeddings',
      headers: first.upstreamHeaders,
      body: (target) => batchBody(target.model, first.request, inputs),
    });
    const provider = answer.target.provider;
    publish(events.llmFirstByte, {
      provider,
      format: 'embeddings',
      durationMs: performance.now() - first.ctx.startedAt,
    });
    const body = await readAll(answer, options.maxResponseBytes);
    if (answer.first === null) {
      if (inputs.length > 1 && budget.calls >= 2) {
        budget.calls -= 2;
        const half = Math.ceil(inputs.length / 2);
        const parts = await Promise.all([
          fetchInputs(first, inputs.slice(0, half), signal, budget),
          fetchInputs(first, inputs.slice(half), signal, budget),
        ]);
        return parts.flat();
      }
      const headers = { ...stripHopByHop(answer.reply.headers), 'cache-control': 'no-store' };
      const refused: Reply = { status: answer.reply.status, headers, body };
      return inputs.map(() => refused);
    }
    const split = splitEmbeddings(body, inputs);
    publish(events.llmStreamEnd, {
      provider,
      format: 'embeddings',
      outcome: 'complete',
      chunks: 1,
      bytes: body.length,
      durationMs: performance.now() - startedAt,
      usage: split.tokens === undefined ? undefined : { inputTokens: sum(split.tokens) },
    });
    return split.vectors.map((vector, i) => {
      const headers: Headers = { 'content-type': 'application/json' };
      if (split.model !== undefined) headers[MODEL_HEADER] = split.model;
      if (split.tokens !== undefined) headers[TOKENS_HEADER] = String(split.tokens[i]);
      return { status: 200, headers, body: vector };
    });
  }

  return (call) => {
    const group = `${call.principal ?? ''}\n${call.request.batchKey}`;
    return untilAborted(loaderFor(group).load(call), call.signal);
  };
}

/** The whole body of an answer (its first chunk included), at most `maxBytes`. */
async function readAll(answer: Answer, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = answer.first === null ? [] : [answer.first];
  let size = answer.first?.length ?? 0;
  try {
    for await (const chunk of answer.stream) {
      const buffer = chunk as Buffer;
      size += buffer.length;
      if (size > maxBytes) {
        answer.stream.destroy();
        throw new GatewayError(
          'GW_UPSTREAM_RESPONSE_TOO_LARGE',
          `${answer.target.label}: the embeddings reply exceeds ${maxBytes} bytes`,
        );
      }
      chunks.push(buffer);
    }
  } catch (error) {
    throw bodyError(error, answer.target);
  }
  return Buffer.concat(chunks, size);
}

function sum(values: readonly number[]): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}
