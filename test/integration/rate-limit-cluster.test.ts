import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli, spawnGateway, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';
import { REDIS_URL, serviceAvailable } from '../helpers/services.js';
import { fresh, startWorkers } from '../helpers/workers.js';

const redisUp = await serviceAvailable('Redis', REDIS_URL);
const KEY = 'sk-cluster-limit-0123456789';
/** Tokens each bucket starts with; refilled so slowly (1 per 100 s) that no test sees a refill. */
const BURST = 6;
const REQUESTS = 16;

afterAll(() => stopAll());

let upstream: CliProcess;
beforeAll(async () => {
  if (redisUp) upstream = await spawnCli(['emulate', 'http']);
});

/** Buckets on the shared Redis under a prefix of this run's own, so no other test's tokens are counted. */
const config = (prefix: string) => `
cache: { store: redis, redis: { url: "${REDIS_URL}", keyPrefix: "${prefix}" } }
auth: { apiKeys: { keys: [{ name: team, key: "${KEY}" }] } }
rateLimits: { perPrincipal: { rate: 0.01, burst: ${BURST} } }
upstreams: { emu: { url: ${upstream.url} } }
routes:
  - { name: api, match: { prefix: /api }, upstream: emu }
  - { name: tight, match: { prefix: /tight }, upstream: emu, auth: false, rateLimit: { perIp: { rate: 0.01, burst: ${BURST} } } }
`;

const bearer = { authorization: `Bearer ${KEY}` };

/** The statuses of `REQUESTS` GETs, each on a connection of its own, spread over `urls` in turn. */
async function statuses(urls: string[], path: string, headers: Record<string, string> = {}) {
  const replies = [];
  for (let i = 0; i < REQUESTS; i++) replies.push(await fresh(`${urls[i % urls.length]}${path}`, headers));
  return replies;
}

const count = (replies: Array<{ status: number }>, status: number) =>
  replies.filter((reply) => reply.status === status).length;

describe.skipIf(!redisUp)('a rate limit on Redis holds across processes', () => {
  it('holds across serve --workers 2: a principal gets its burst once, whichever worker serves', async () => {
    const gw = await startWorkers(config(`slipstream-test:${randomUUID()}:`));
    try {
      const replies = await statuses([gw.url], '/api/x', bearer);
      // Both workers took part, or this proves nothing about sharing.
      expect(new Set(replies.map((reply) => reply.worker))).toEqual(new Set(['1', '2']));
      expect(count(replies, 200)).toBe(BURST);
      expect(count(replies, 429)).toBe(REQUESTS - BURST);
      // A route's own per-address limit too.
      const tight = await statuses([gw.url], '/tight/x');
      expect(count(tight, 200)).toBe(BURST);
      expect(count(tight, 429)).toBe(REQUESTS - BURST);
    } finally {
      await gw.process.stop();
    }
  });

  it('holds across two replicas sharing Redis: the burst is spent once over both', async () => {
    const prefix = `slipstream-test:${randomUUID()}:`;
    const a = await spawnGateway(config(prefix));
    const b = await spawnGateway(config(prefix));
    try {
      const replies = await statuses([a.url, b.url], '/api/x', bearer);
      expect(count(replies, 200)).toBe(BURST);
      expect(count(replies, 429)).toBe(REQUESTS - BURST);
      // Refusals come from both replicas, each reading the one shared bucket.
      const refusedBy = (url: string) =>
        replies.filter((reply, i) => reply.status === 429 && [a.url, b.url][i % 2] === url).length;
      expect(refusedBy(a.url)).toBeGreaterThan(0);
      expect(refusedBy(b.url)).toBeGreaterThan(0);
      const tight = await statuses([a.url, b.url], '/tight/x');
      expect(count(tight, 200)).toBe(BURST);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
