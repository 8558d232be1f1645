import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startSpecialists } from '../../emulators/specialists.js';
import type { RunningSpecialists, SpecialistsOptions } from '../../emulators/specialists.js';
import { groupsSchema } from '../../src/config/groups-schema.js';
import { events } from '../../src/telemetry/events.js';
import type { DiscoveryRefreshEvent } from '../../src/telemetry/events.js';
import { fanoutGroup } from '../../src/upstreams/group/fanout.js';
import type { FanoutGroup, GroupOptions } from '../../src/upstreams/group/fanout.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const close of cleanup.splice(0)) await close();
});

async function team(options: SpecialistsOptions): Promise<RunningSpecialists> {
  const running = await startSpecialists(options);
  cleanup.push(() => running.close());
  return running;
}

async function group(config: Record<string, unknown>, options: GroupOptions = {}): Promise<FanoutGroup> {
  const built = fanoutGroup('g', groupsSchema.parse({ g: config }).g!, options);
  cleanup.unshift(() => built.close());
  await built.start();
  return built;
}

function send(g: FanoutGroup) {
  return g.fanout({
    body: Buffer.from('{"message":"hi"}'),
    requestId: 't',
    signal: new AbortController().signal,
  });
}

/** Records discovery refresh events for the group named `g` while the test runs. */
function refreshes(): DiscoveryRefreshEvent[] {
  const seen: DiscoveryRefreshEvent[] = [];
  const listener = (message: unknown) => {
    const e = message as DiscoveryRefreshEvent;
    if (e.group === 'g') seen.push(e);
  };
  events.discoveryRefresh.subscribe(listener);
  cleanup.push(() => void events.discoveryRefresh.unsubscribe(listener));
  return seen;
}

/** A discovery endpoint whose list the test edits. */
async function listServer(list: Array<{ name: string; url: string }>) {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(list));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.unref();
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/members`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('fan-out group discovery', () => {
  it('loads the member list once at start-up and serves every fan-out within the TTL from it', async () => {
    const running = await team({ members: 4, latency: '1ms' });
    const g = await group({ discovery: { url: `${running.url}/agents`, ttl: '1m' } });
    for (let i = 0; i < 5; i++) expect((await send(g)).summary.answered).toBe(4);
    expect(running.stats().discoveryRequests).toBe(1);
  });

  it('refreshes a stale list in the background without making the fan-out wait for it', async () => {
    const running = await team({ members: 2, latency: '1ms' });
    const seen = refreshes();
    const g = await group({ discovery: { url: `${running.url}/agents`, ttl: '30ms' } });
    expect(seen).toHaveLength(1);
    running.configure({ discovery: { latency: '400ms' } });
    await sleep(40);
    const { summary } = await send(g);
    expect(summary.answered).toBe(2);
    // The refresh was started by that fan-out but has not finished: the fan-out did not wait for it.
    expect(running.stats().discoveryRequests).toBe(2);
    expect(seen).toHaveLength(1);
    await expect.poll(() => seen.length, { timeout: 3_000 }).toBe(2);
    expect(seen[1]).toMatchObject({ ok: true, members: 2 });
  });

  it('keeps the last good list when a refresh fails, and logs and reports the failure', async () => {
    const running = await team({ members: 3, latency: '1ms' });
    const seen = refreshes();
    const lines: string[] = [];
    const logger = pino(
      { level: 'warn' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    );
    const g = await group({ discovery: { url: `${running.url}/agents`, ttl: '20ms' } }, { logger });
    running.configure({ discovery: { fail: true } });
    await sleep(30);
    await send(g);
    await expect.poll(() => seen.some((e) => !e.ok)).toBe(true);
    expect(seen.find((e) => !e.ok)).toMatchObject({ ok: false, members: 3 });
    expect(lines.join('')).toContain('discovery refresh failed; keeping the last good member list');
    for (let i = 0; i < 3; i++) expect((await send(g)).summary.answered).toBe(3);
  });

  it('adds and removes members as the discovered list changes, static members always kept', async () => {
    const running = await team({ members: 4, latency: '1ms' });
    const [a, b, c, d] = running.members;
    const list = [a!, b!];
    const url = await listServer(list);
    const g = await group({ members: [d], discovery: { url, ttl: '20ms' } });
    expect((await send(g)).summary.outcomes.answered).toEqual([
      'specialist-04',
      'specialist-01',
      'specialist-02',
    ]);
    list.splice(0, 2, c!);
    await sleep(30);
    await send(g); // starts the refresh
    await expect
      .poll(async () => (await send(g)).summary.outcomes.answered, { timeout: 3_000 })
      .toEqual(['specialist-04', 'specialist-03']);
  });

  it('serves static members while discovery has never answered, then adds the discovered ones', async () => {
    const running = await team({ members: 3, latency: '1ms' });
    running.configure({ discovery: { fail: true } });
    const g = await group({
      members: [running.members[0]],
      discovery: { url: `${running.url}/agents`, ttl: '50ms' },
    });
    expect((await send(g)).summary.outcomes.answered).toEqual(['specialist-01']);
    running.configure({ discovery: { fail: false } });
    await expect.poll(async () => (await send(g)).summary.answered, { timeout: 3_000 }).toBe(3);
  });

  it('answers GW_UPSTREAM_UNAVAILABLE when a group has no members at all', async () => {
    const running = await team({ members: 1, latency: '1ms' });
    running.configure({ discovery: { fail: true } });
    const g = await group({ discovery: { url: `${running.url}/agents`, ttl: '1m' } });
    await expect(send(g)).rejects.toMatchObject({ code: 'GW_UPSTREAM_UNAVAILABLE' });
  });
});
