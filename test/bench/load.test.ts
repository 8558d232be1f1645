import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { latencyHistogram } from '../../src/bench/histogram.js';
import { assertLoopback, httpTask } from '../../src/bench/http-task.js';
import { runLoad } from '../../src/bench/load.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((s) => new Promise((resolve) => (s.closeAllConnections(), s.close(resolve)))),
  );
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('latency histogram', () => {
  it('reports percentiles of a known uniform distribution within HDR precision (0.1%)', () => {
    const h = latencyHistogram();
    for (let us = 1; us <= 100_000; us++) h.record(us);
    const s = h.summary();
    expect(s.count).toBe(100_000);
    expect(s.p50).toBeGreaterThanOrEqual(49_950);
    expect(s.p50).toBeLessThanOrEqual(50_050);
    expect(Math.abs(s.p99 - 99_000) / 99_000).toBeLessThan(0.001);
    expect(Math.abs(s.p999 - 99_900) / 99_900).toBeLessThan(0.001);
    expect(Math.abs(s.max - 100_000) / 100_000).toBeLessThan(0.001);
  });

  it('finds both modes of a bimodal distribution', () => {
    const h = latencyHistogram();
    for (let i = 0; i < 9_000; i++) h.record(1_000);
    for (let i = 0; i < 1_000; i++) h.record(50_000);
    const s = h.summary();
    expect(Math.abs(s.p50 - 1_000)).toBeLessThanOrEqual(1);
    expect(Math.abs(s.p90 - 1_000)).toBeLessThanOrEqual(1);
    expect(Math.abs(s.p99 - 50_000) / 50_000).toBeLessThan(0.001);
  });
});

describe('load runner', () => {
  it('measures a known latency distribution from a real server: 90% at 10 ms, 10% at 60 ms', async () => {
    let n = 0;
    /** What the server itself took per request, in µs: a loaded machine's late timers show here too. */
    const served: number[] = [];
    const url = await serve((_req, res) => {
      const delay = n++ % 10 === 9 ? 60 : 10;
      const at = performance.now();
      setTimeout(() => {
        served.push((performance.now() - at) * 1000);
        res.end('ok');
      }, delay);
    });
    const http = httpTask(url, { path: '/' }, { connections: 4 });
    const result = await runLoad({
      task: http.task,
      mode: { kind: 'closed', concurrency: 4 },
      durationMs: 1_500,
    });
    await http.close();
    expect(result.errors).toEqual({});
    expect(result.latencyUs.p50).toBeGreaterThanOrEqual(10_000);
    // The median is the server's median plus a loopback round trip, not a slow request or a batch.
    const serverP50 = served.sort((a, b) => a - b)[Math.floor(served.length / 2)]!;
    expect(result.latencyUs.p50).toBeLessThan(serverP50 + 15_000);
    expect(result.latencyUs.p99).toBeGreaterThanOrEqual(60_000);
  });

  it('counts queueing delay in open-loop mode: arrivals faster than service show in the tail', async () => {
    // One request at a time, 20 ms each: capacity 50/s.
    let busyUntil = 0;
    const url = await serve((_req, res) => {
      const start = Math.max(Date.now(), busyUntil);
      busyUntil = start + 20;
      setTimeout(() => res.end('ok'), busyUntil - Date.now());
    });
    const open = httpTask(url, { path: '/' }, { connections: 64 });
    const queued = await runLoad({
      task: open.task,
      mode: { kind: 'open', ratePerS: 100 },
      durationMs: 1_000,
    });
    await open.close();
    busyUntil = 0;
    const closed = httpTask(url, { path: '/' });
    const unqueued = await runLoad({
      task: closed.task,
      mode: { kind: 'closed', concurrency: 1 },
      durationMs: 500,
    });
    await closed.close();
    expect(queued.requests).toBeGreaterThanOrEqual(95);
    expect(queued.latencyUs.p99).toBeGreaterThan(200_000); // waited behind earlier arrivals
    // Closed loop never sees the queue: its tail is a fraction of the open loop's, measured in the same run.
    expect(unqueued.latencyUs.p99 * 3).toBeLessThan(queued.latencyUs.p99);
  });

  it('stops at maxRequests and counts failures by code', async () => {
    let calls = 0;
    const result = await runLoad({
      task: async () => {
        calls++;
        if (calls % 2 === 0) throw Object.assign(new Error('boom'), { code: 'E_BOOM' });
        return calls % 3 === 0 ? { ok: false, code: 'HTTP_500' } : { ok: true };
      },
      mode: { kind: 'closed', concurrency: 1 },
      durationMs: 10_000,
      maxRequests: 12,
    });
    expect(result.requests).toBe(12);
    expect(result.errors).toEqual({ E_BOOM: 6, HTTP_500: 2 });
    expect(result.ok).toBe(4);
  });

  it('aborts a task past its timeout and counts it as TIMEOUT', async () => {
    const result = await runLoad({
      task: (signal) =>
        new Promise((_resolve, reject) =>
          signal.addEventListener('abort', () => reject(new Error('aborted'))),
        ),
      mode: { kind: 'closed', concurrency: 2 },
      durationMs: 50,
      timeoutMs: 30,
    });
    expect(result.errors.TIMEOUT).toBe(result.requests);
  });
});

describe('assertLoopback', () => {
  it('accepts loopback targets and refuses anything else before connecting', () => {
    for (const url of ['http://127.0.0.1:1', 'http://localhost:1', 'http://[::1]:1', 'http://127.8.9.10:1']) {
      expect(() => assertLoopback(url)).not.toThrow();
    }
    for (const url of [
      'http://10.0.0.1',
      'http://example.com',
      'http://192.168.1.1:80',
      'http://127.0.0.1.example.com',
    ]) {
      expect(() => assertLoopback(url)).toThrow(/only target loopback/);
    }
  });
});
