// Load runner: closed-loop (fixed concurrency) or open-loop (fixed arrival rate), bounded in time and count.
import { cpuTimeMs } from './cpu-time.js';
import { latencyHistogram } from './histogram.js';
import type { CurvePoint, LatencySummary } from './histogram.js';

/** What one task reports; a thrown error counts as a failure with its `code` (or name). */
export interface TaskOutcome {
  ok: boolean;
  code?: string;
}

export type Task = (signal: AbortSignal) => Promise<TaskOutcome | void>;

export type LoadMode =
  | { kind: 'closed'; concurrency: number }
  | {
      kind: 'open';
      ratePerS: number;
      /** Tasks allowed in flight; an arrival past it is counted as error `LOAD_MAX_IN_FLIGHT`. Default 10,000. */
      maxInFlight?: number;
    };

export interface LoadOptions {
  task: Task;
  mode: LoadMode;
  /** How long arrivals go on, in ms (after warm-up). */
  durationMs: number;
  /** Stop after this many measured tasks. */
  maxRequests?: number;
  /** Runs before measuring; its results are discarded. Default 0. */
  warmupMs?: number;
  /** Per-task deadline; a task past it is aborted and counted as `TIMEOUT`. Default 30,000. */
  timeoutMs?: number;
  onProgress?: (done: number, elapsedMs: number) => void;
}

export interface LoadResult {
  mode: LoadMode;
  requests: number;
  ok: number;
  errors: Record<string, number>;
  durationS: number;
  /** Successful tasks per second over the measured period. */
  throughputPerS: number;
  latencyUs: LatencySummary;
  curve: CurvePoint[];
}

/**
 * Runs `task` under load and measures it. In open-loop mode the i-th arrival is *scheduled* at
 * `start + i / rate` and its latency counts from that scheduled time, so when the system falls behind,
 * the queueing delay shows in the percentiles instead of being hidden (coordinated omission, Gil Tene).
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  await warmUp(options);
  return measure(options);
}

/** A load run with the CPU time one process (the path under test) spent per measured request. */
export type LoadResultWithCpu = LoadResult & { cpuUsPerRequest?: number };

/**
 * `runLoad`, plus the CPU time process `pid` spent per measured request, in us to 0.1 (from /proc: it
 * barely moves when neighbours compete for the cores). The warm-up runs before the first reading, so its
 * CPU is not charged to the measured requests. Without a pid, or off Linux, just `runLoad`.
 */
export async function runLoadWithCpu(
  options: LoadOptions,
  pid: number | undefined,
): Promise<LoadResultWithCpu> {
  await warmUp(options);
  const before = cpuTimeMs(pid);
  const result: LoadResultWithCpu = await measure(options);
  const after = cpuTimeMs(pid);
  if (before !== undefined && after !== undefined && result.requests > 0) {
    result.cpuUsPerRequest = Math.round(((after - before) * 1_000 * 10) / result.requests) / 10;
  }
  return result;
}

/** Runs `options.warmupMs` of the same load, measured and thrown away (JIT, pools, caches warm). */
async function warmUp(options: LoadOptions): Promise<void> {
  if ((options.warmupMs ?? 0) > 0) {
    await measure({
      ...options,
      durationMs: options.warmupMs!,
      maxRequests: undefined,
      onProgress: undefined,
    });
  }
}

async function measure(options: LoadOptions): Promise<LoadResult> {
  const histogram = latencyHistogram();
  const errors: Record<string, number> = {};
  const timeoutMs = options.timeoutMs ?? 30_000;
  const maxRequests = options.maxRequests ?? Infinity;
  let requests = 0;
  let ok = 0;
  const started = performance.now();
  const deadline = started + options.durationMs;
  let lastProgress = started;

  const fail = (code: string) => {
    errors[code] = (errors[code] ?? 0) + 1;
  };
  /** Runs one task whose latency counts from `from` (its scheduled or actual start). */
  const runOne = async (from: number) => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const outcome = await options.task(controller.signal);
      if (controller.signal.aborted) fail('TIMEOUT');
      else if (outcome === undefined || outcome.ok) {
        ok++;
        histogram.record((performance.now() - from) * 1000);
      } else fail(outcome.code ?? 'FAILED');
    } catch (error) {
      fail(controller.signal.aborted ? 'TIMEOUT' : errorCode(error));
    } finally {
      clearTimeout(timer);
      requests++;
      const now = performance.now();
      if (options.onProgress !== undefined && now - lastProgress > 100) {
        lastProgress = now;
        options.onProgress(requests, now - started);
      }
    }
  };

  if (options.mode.kind === 'closed') {
    let issued = 0;
    const worker = async () => {
      while (performance.now() < deadline && issued < maxRequests) {
        issued++;
        await runOne(performance.now());
      }
    };
    await Promise.all(Array.from({ length: options.mode.concurrency }, worker));
  } else {
    const { ratePerS } = options.mode;
    const maxInFlight = options.mode.maxInFlight ?? 10_000;
    const intervalMs = 1000 / ratePerS;
    const inFlight = new Set<Promise<void>>();
    let issued = 0;
    // Issue every arrival that is due, then sleep until the next one: one timer per batch, not per request.
    while (issued < maxRequests) {
      const scheduledAt = started + issued * intervalMs;
      if (scheduledAt >= deadline) break;
      const now = performance.now();
      if (scheduledAt > now) {
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, scheduledAt - now)));
        continue;
      }
      issued++;
      if (inFlight.size >= maxInFlight) {
        fail('LOAD_MAX_IN_FLIGHT');
        requests++;
        continue;
      }
      const running: Promise<void> = runOne(scheduledAt).finally(() => inFlight.delete(running));
      inFlight.add(running);
    }
    await Promise.all(inFlight);
  }

  const durationS = Math.max(options.durationMs, performance.now() - started) / 1000;
  return {
    mode: options.mode,
    requests,
    ok,
    errors,
    durationS: Math.round(durationS * 1000) / 1000,
    throughputPerS: Math.round(ok / durationS),
    latencyUs: histogram.summary(),
    curve: histogram.percentiles(),
  };
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.name : 'ERROR';
}

/**
 * Measures every path in two interleaved halves of `durationMs` (a, b, c, then a, b, c again) so that all
 * paths share any drift of a noisy machine, and keeps each path's better half: the higher throughput
 * under concurrency, else the lower median. The same rule for every path keeps the comparison fair.
 */
export async function measureInterleaved<K extends string, R extends LoadResult = LoadResult>(
  paths: Record<K, (durationMs: number) => Promise<R>>,
  durationMs: number,
): Promise<Record<K, R>> {
  const names = Object.keys(paths) as K[];
  const first = {} as Record<K, R>;
  const best = {} as Record<K, R>;
  for (const name of names) first[name] = await paths[name](durationMs / 2);
  for (const name of names) best[name] = better(first[name], await paths[name](durationMs / 2));
  return best;
}

function better<R extends LoadResult>(a: R, b: R): R {
  if (a.mode.kind === 'closed' && a.mode.concurrency > 1) return a.throughputPerS >= b.throughputPerS ? a : b;
  return a.latencyUs.p50 <= b.latencyUs.p50 ? a : b;
}
