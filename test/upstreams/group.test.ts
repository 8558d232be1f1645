import { afterEach, describe, expect, it } from 'vitest';
import { startSpecialists } from '../../emulators/specialists.js';
import type { RunningSpecialists, SpecialistsOptions } from '../../emulators/specialists.js';
import { groupsSchema } from '../../src/config/groups-schema.js';
import { fanoutGroup } from '../../src/upstreams/group/fanout.js';
import type { FanoutGroup, MemberResult } from '../../src/upstreams/group/fanout.js';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((close) => close()));
});

async function team(options: SpecialistsOptions): Promise<RunningSpecialists> {
  const running = await startSpecialists(options);
  cleanup.push(() => running.close());
  return running;
}

/** A started group over `running`'s members, with `extra` group config (YAML-shaped, parsed by the schema). */
async function group(running: RunningSpecialists, extra: Record<string, unknown> = {}): Promise<FanoutGroup> {
  const config = groupsSchema.parse({ g: { members: running.members, ...extra } }).g!;
  const built = fanoutGroup('g', config);
  cleanup.unshift(() => built.close());
  await built.start();
  return built;
}

/** Lets calls cut by a deadline or a quorum finish tearing down (they are aborted a tick after the reply). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

const message = Buffer.from(JSON.stringify({ message: 'hello team' }));
let n = 0;
function send(g: FanoutGroup, onResult?: (r: MemberResult) => void) {
  return g.fanout({ body: message, requestId: `t-${++n}`, signal: new AbortController().signal, onResult });
}

describe('fan-out group', () => {
  it('calls every member in parallel and reuses each member’s warmed connection across fan-outs', async () => {
    const running = await team({ members: 6, latency: '20ms' });
    const g = await group(running, { pool: { warm: 1 } });
    running.reset();
    for (let i = 0; i < 4; i++) {
      const { results, summary } = await send(g);
      expect(summary.answered).toBe(6);
      expect(results.map((r) => r.member)).toEqual(running.members.map((m) => m.name));
      expect(results[0]!.body).toMatchObject({ ok: true, agent: 'specialist-01', message: 'hello team' });
      // undici frees a connection a tick after its response ends; a real next request is never that quick.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const stats = running.stats();
    // All six requests of a fan-out were in flight at the same time...
    expect(stats.maxInFlight).toBe(6);
    // ...and no member saw a new connection after warm-up.
    expect(stats.connections).toBe(0);
    for (const member of Object.values(stats.members)) expect(member.requests).toBe(4);
  });

  it('reports each member the moment it settles, in arrival order', async () => {
    const running = await team({
      members: 3,
      latency: '5ms',
      slow: [
        { count: 1, latency: '150ms' },
        { count: 1, latency: '60ms' },
      ],
    });
    const g = await group(running);
    const arrivals: string[] = [];
    const { results } = await send(g, (r) => arrivals.push(r.member));
    expect(arrivals).toEqual(['specialist-01', 'specialist-02', 'specialist-03']);
    // Results stay in member order; latencies show who came when.
    expect(results[2]!.latencyMs).toBeGreaterThan(results[1]!.latencyMs);
  });

  it('reports a failing member in its own entry without failing the others', async () => {
    const running = await team({ members: 3, latency: '1ms', errors: 1, errorStatus: 503 });
    const g = await group(running, { breaker: false });
    const { results, summary } = await send(g);
    expect(summary).toMatchObject({ answered: 2, failed: 1, timedOut: 0, skipped: 0 });
    expect(results[2]).toMatchObject({
      member: 'specialist-03',
      outcome: 'failed',
      status: 503,
      error: { code: 'GW_UPSTREAM_UNAVAILABLE' },
    });
  });

  it('costs a hung member exactly its deadline once, then skips it without calling it', async () => {
    const running = await team({ members: 3, latency: '1ms', hung: 1 });
    const g = await group(running, { memberTimeout: '250ms', breaker: { halfOpenAfter: '10s' } });
    running.reset();
    const first = await send(g);
    expect(first.results[2]).toMatchObject({ outcome: 'timedOut', error: { code: 'GW_UPSTREAM_TIMEOUT' } });
    expect(first.results[2]!.latencyMs).toBeGreaterThanOrEqual(249);
    expect(first.summary.durationMs).toBeGreaterThanOrEqual(249);
    // The reply does not wait for the timed-out call to be torn down; its breaker opens a tick later.
    await settle();

    for (let i = 0; i < 3; i++) {
      const later = await send(g);
      expect(later.summary).toMatchObject({ answered: 2, skipped: 1, timedOut: 0 });
      expect(later.results[2]).toMatchObject({
        outcome: 'skipped',
        latencyMs: 0,
        error: { code: 'GW_BREAKER_OPEN' },
      });
    }
    expect(running.stats().members['specialist-03']!.requests).toBe(1);
  });

  it('probes a skipped member in the background and readmits it, warmed, once it answers', async () => {
    const running = await team({ members: 2, latency: '1ms', hung: 1 });
    const g = await group(running, { memberTimeout: '200ms', breaker: { halfOpenAfter: '100ms' } });
    expect((await send(g)).summary.timedOut).toBe(1);
    await settle();
    expect((await send(g)).summary.skipped).toBe(1);
    running.configure({ members: { 'specialist-02': { mode: 'ok' } } });
    running.reset();
    await expect.poll(async () => (await send(g)).summary.answered, { timeout: 3_000, interval: 50 }).toBe(2);
    const stats = running.stats().members['specialist-02']!;
    // The readmitting probe plus a warm-up, both without a chat message.
    expect(stats.probes).toBeGreaterThanOrEqual(1);
  });

  it('returns once the quorum answered and aborts the stragglers, which the members see', async () => {
    const running = await team({ members: 5, latency: '5ms', slow: [{ count: 3, latency: '5s' }] });
    const g = await group(running, { minResponses: 2 });
    running.reset();
    const { results, summary } = await send(g);
    expect(summary).toMatchObject({ answered: 2, cancelled: 3, quorum: { required: 2, met: true } });
    expect(summary.outcomes.cancelled).toEqual(['specialist-03', 'specialist-04', 'specialist-05']);
    expect(results[4]).toMatchObject({ outcome: 'cancelled', error: { code: 'GW_CLIENT_CLOSED' } });
    await expect.poll(() => running.stats().aborted).toBe(3);
  });

  it('says when the quorum was missed', async () => {
    const running = await team({ members: 3, latency: '1ms', errors: 2 });
    const g = await group(running, { minResponses: 2, breaker: false });
    const { summary } = await send(g);
    expect(summary).toMatchObject({ answered: 1, failed: 2, quorum: { required: 2, met: false } });
  });

  it('with firstN, returns the first answers and cancels the rest', async () => {
    const running = await team({ members: 4, latency: '2s', slow: [{ count: 1, latency: '5ms' }] });
    const g = await group(running, { firstN: 1 });
    running.reset();
    const { summary } = await send(g);
    expect(summary.outcomes.answered).toEqual(['specialist-04']);
    expect(summary.cancelled).toBe(3);
    expect(summary.quorum).toBeUndefined();
    await expect.poll(() => running.stats().aborted).toBe(3);
  });

  it('cancels every member call when the client goes away', async () => {
    const running = await team({ members: 2, latency: '5s' });
    const g = await group(running);
    running.reset();
    const client = new AbortController();
    const pending = g.fanout({ body: message, requestId: 'gone', signal: client.signal });
    await expect.poll(() => running.stats().inFlight).toBe(2);
    client.abort();
    const { summary } = await pending;
    expect(summary.cancelled).toBe(2);
    await expect.poll(() => running.stats().aborted).toBe(2);
  });

  it('never opens a breaker for members cancelled by a met quorum', async () => {
    const running = await team({ members: 2, latency: '5ms', slow: [{ count: 1, latency: '5s' }] });
    const g = await group(running, { firstN: 1 });
    for (let i = 0; i < 3; i++) expect((await send(g)).summary.cancelled).toBe(1);
    // Still called every time: cancellation is not the member's failure.
    expect(running.stats().members['specialist-02']!.requests).toBe(3);
  });
});
