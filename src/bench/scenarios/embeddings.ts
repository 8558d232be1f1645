// The embeddings part of `bench chat`: single-input requests direct vs through Slipstream (batched, then cached).
import { Pool, request } from 'undici';
import { latencyHistogram } from '../histogram.js';
import type { LatencySummary } from '../histogram.js';
import { formatTable } from '../scenario.js';

/** One closed-loop run of single-input embedding requests. */
export interface EmbeddingsRun {
  requests: number;
  errors: number;
  /** `POST /v1/embeddings` calls the provider received during the run. */
  upstreamCalls: number;
  upstreamPerThousand: number;
  perSecond: number;
  latencyUs: LatencySummary;
}

export interface EmbeddingsBenchResult {
  /** Callers in flight at once (each sends its next request when its last one is answered). */
  concurrency: number;
  /** The provider's time to answer one call, in ms (the emulator's `ttft`). */
  providerLatencyMs: number;
  /** Every request straight to the provider: one call each. */
  direct: EmbeddingsRun;
  /** Through Slipstream, every input new: concurrent requests share calls. */
  batched: EmbeddingsRun;
  /** Through Slipstream, the inputs of the batched run again: answered from the cache. */
  cached: EmbeddingsRun;
}

const CONCURRENCY = 64;
const PROVIDER_MS = 20;

async function upstreamCalls(emulator: string): Promise<number> {
  const response = await request(`${emulator}/__emulator/stats`);
  const stats = (await response.body.json()) as { surfaces: { embeddings: { requests: number } } };
  return stats.surfaces.embeddings.requests;
}

/** Runs CONCURRENCY callers against `url` for `ms`; request k embeds `input(k)`. */
async function closedLoop(
  emulator: string,
  url: string,
  ms: number,
  input: (k: number) => string,
): Promise<EmbeddingsRun> {
  const pool = new Pool(url, { connections: CONCURRENCY });
  const send = async (text: string) => {
    const response = await pool.request({
      path: '/v1/embeddings',
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer bench',
        'x-emulate-ttft': `${PROVIDER_MS}ms`,
      },
      // The openai SDK's default encoding.
      body: JSON.stringify({ model: 'e', input: text, encoding_format: 'base64' }),
    });
    await response.body.dump();
    return response.statusCode === 200;
  };
  const latency = latencyHistogram();
  let requests = 0;
  let errors = 0;
  try {
    // Opens every connection first: the run measures requests, not TCP handshakes.
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => send(`warm-up ${url} ${i}`)));
    const before = await upstreamCalls(emulator);
    const started = performance.now();
    const deadline = started + ms;
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < deadline) {
          const at = performance.now();
          const ok = await send(input(next++)).catch(() => false);
          latency.record((performance.now() - at) * 1000);
          requests++;
          if (!ok) errors++;
        }
      }),
    );
    const elapsedS = (performance.now() - started) / 1000;
    const calls = (await upstreamCalls(emulator)) - before;
    return {
      requests,
      errors,
      upstreamCalls: calls,
      upstreamPerThousand: Math.round((calls / Math.max(1, requests)) * 1000),
      perSecond: Math.round(requests / elapsedS),
      latencyUs: latency.summary(),
    };
  } finally {
    await pool.close();
  }
}

/**
 * Measures, in one run: single-input requests straight to the emulator (`ttft` 20 ms per call), the same
 * through Slipstream with every input new (batched), then the batched run's inputs again (cached), each
 * for `ms / 2` at 64 callers in flight. The gateway must route model `e` to the emulator.
 */
export async function measureEmbeddings(
  emulator: string,
  gateway: string,
  ms: number,
): Promise<EmbeddingsBenchResult> {
  const phaseMs = Math.max(500, Math.round(ms / 2));
  const direct = await closedLoop(emulator, emulator, phaseMs, (k) => `direct ${k}`);
  const batched = await closedLoop(emulator, gateway, phaseMs, (k) => `batched ${k}`);
  // Inputs the batched run embedded, few enough to all stay in the default memory cache (10,000 entries).
  const seen = Math.max(1, Math.min(batched.requests, 5_000));
  const cached = await closedLoop(emulator, gateway, phaseMs, (k) => `batched ${k % seen}`);
  return { concurrency: CONCURRENCY, providerLatencyMs: PROVIDER_MS, direct, batched, cached };
}

/** The terminal lines for the embeddings runs. */
export function formatEmbeddings(e: EmbeddingsBenchResult): string[] {
  const row = (label: string, pick: (r: EmbeddingsRun) => number) => [
    label,
    pick(e.direct),
    pick(e.batched),
    pick(e.cached),
  ];
  return [
    `embeddings: single-input requests, ${e.concurrency} callers in flight, provider answers in ${e.providerLatencyMs} ms`,
    ...formatTable(
      ['direct', 'batched', 'cached'],
      [
        row('requests/s', (r) => r.perSecond),
        row('upstream calls per 1,000 requests', (r) => r.upstreamPerThousand),
        row('p50 (us)', (r) => r.latencyUs.p50),
        row('p99 (us)', (r) => r.latencyUs.p99),
        row('errors', (r) => r.errors),
      ],
    ),
  ];
}
