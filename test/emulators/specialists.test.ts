import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Client, request } from 'undici';
import { parseSlow, startSpecialists } from '../../emulators/specialists.js';
import type { RunningSpecialists } from '../../emulators/specialists.js';
import { runCli, spawnCli, stopAll } from '../helpers/processes.js';

const running: RunningSpecialists[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((team) => team.close()));
});
afterAll(() => stopAll());

async function start(options: Parameters<typeof startSpecialists>[0] = {}) {
  const team = await startSpecialists(options);
  running.push(team);
  return team;
}

async function chat(url: string, body: unknown = { message: 'hi' }) {
  const response = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.statusCode, body: (await response.body.json()) as any };
}

describe('specialists emulator', () => {
  it('puts each member on its own port and assigns hung, erroring and slow members from the end', async () => {
    const team = await start({
      members: 6,
      latency: '1ms',
      hung: 1,
      errors: 1,
      slow: [{ count: 2, latency: '30ms' }],
    });
    expect(new Set(team.members.map((m) => new URL(m.url).port)).size).toBe(6);
    const stats = team.stats().members;
    expect(Object.keys(stats)).toEqual([
      'specialist-01',
      'specialist-02',
      'specialist-03',
      'specialist-04',
      'specialist-05',
      'specialist-06',
    ]);
    expect(stats['specialist-06']!.mode).toBe('hung');
    expect(stats['specialist-05']!.mode).toBe('error');
    expect([stats['specialist-03']!.latency, stats['specialist-04']!.latency]).toEqual(['30ms', '30ms']);
    expect(stats['specialist-01']).toMatchObject({ mode: 'ok', latency: '1ms' });
  });

  it('answers a chat after the member latency, naming the member, and counts keep-alive connections per member', async () => {
    const team = await start({ members: 2, latency: '20ms' });
    const client = new Client(new URL(team.members[0]!.url).origin);
    const started = performance.now();
    for (let i = 0; i < 3; i++) {
      const response = await client.request({
        path: '/chat',
        method: 'POST',
        body: JSON.stringify({ message: `m${i}` }),
      });
      const body = (await response.body.json()) as any;
      expect(body).toMatchObject({ ok: true, agent: 'specialist-01', message: `m${i}` });
    }
    expect(performance.now() - started).toBeGreaterThanOrEqual(59);
    await client.close();
    const stats = team.stats();
    expect(stats.members['specialist-01']).toMatchObject({ connections: 1, requests: 3, answered: 3 });
    expect(stats.members['specialist-02']).toMatchObject({ connections: 0, requests: 0 });
    expect(stats).toMatchObject({ connections: 1, requests: 3 });
  });

  it('never answers from a hung member and counts the request as aborted when the client gives up', async () => {
    const team = await start({ members: 2, latency: '0ms', hung: 1 });
    const hung = team.members[1]!.url;
    await expect(
      request(hung, { method: 'POST', body: '{}', signal: AbortSignal.timeout(50) }),
    ).rejects.toThrow();
    await expect.poll(() => team.stats().members['specialist-02']!.aborted).toBe(1);
    expect(team.stats().members['specialist-02']).toMatchObject({ hangs: 1, inFlight: 0, answered: 0 });
  });

  it('answers the error status from an erroring member, and health probes from healthy ones at once', async () => {
    const team = await start({ members: 2, latency: '5s', errors: 1, errorStatus: 502 });
    // Probes skip the latency: a 5 s member still answers HEAD immediately.
    const probe = await request(team.members[0]!.url, {
      method: 'OPTIONS',
      signal: AbortSignal.timeout(1000),
    });
    await probe.body.dump();
    expect(probe.statusCode).toBe(200);
    team.configure({ members: { 'specialist-02': { latency: '0ms' } } });
    const failed = await chat(team.members[1]!.url);
    expect(failed.status).toBe(502);
    expect(team.stats().members['specialist-02']).toMatchObject({ errors: 1, probes: 0, requests: 1 });
    expect(team.stats().members['specialist-01']).toMatchObject({ probes: 1, requests: 0 });
  });

  it('lists members at GET /agents and can make discovery fail or recover at run time', async () => {
    const team = await start({ members: 3, latency: '0ms' });
    const listed = await request(`${team.url}/agents`);
    expect(await listed.body.json()).toEqual({ members: team.members });
    const fail = await request(`${team.url}/__emulator/config`, {
      method: 'POST',
      body: JSON.stringify({ discovery: { fail: true } }),
    });
    expect(fail.statusCode).toBe(200);
    await fail.body.dump();
    const failing = await request(`${team.url}/agents`);
    await failing.body.dump();
    expect(failing.statusCode).toBe(503);
    expect(team.stats().discoveryRequests).toBe(2);
    team.configure({ discovery: { fail: false } });
    const back = await request(`${team.url}/agents`);
    await back.body.dump();
    expect(back.statusCode).toBe(200);
  });

  it('recovers a hung member at run time and rejects a patch naming an unknown member', async () => {
    const team = await start({ members: 1, latency: '0ms', hung: 1 });
    team.configure({ members: { 'specialist-01': { mode: 'ok' } } });
    expect((await chat(team.members[0]!.url)).status).toBe(200);
    expect(() => team.configure({ members: { nobody: { mode: 'ok' } } })).toThrow('no member "nobody"');
  });

  it('rejects counts beyond the team and malformed --slow values', async () => {
    await expect(startSpecialists({ members: 2, hung: 2, errors: 1 })).rejects.toThrow('exceed members');
    expect(parseSlow(['2:uniform:300ms-500ms'])).toEqual([{ count: 2, latency: 'uniform:300ms-500ms' }]);
    expect(() => parseSlow(['fast'])).toThrow('bad --slow "fast"');
  });
});

describe('slipstream emulate specialists', () => {
  it('prints its listening line and serves discovery and stats', async () => {
    const team = await spawnCli([
      'emulate',
      'specialists',
      '--members',
      '3',
      '--latency',
      '1ms',
      '--hung',
      '1',
      '--slow',
      '1:20ms',
    ]);
    const listed = await request(`${team.url}/agents`);
    const body = (await listed.body.json()) as any;
    expect(body.members).toHaveLength(3);
    const stats = await request(`${team.url}/__emulator/stats`);
    const members = ((await stats.body.json()) as any).members;
    expect(members['specialist-03'].mode).toBe('hung');
    expect(members['specialist-02'].latency).toBe('20ms');
  });

  it('exits with code 2 and names the flag when a flag is bad', async () => {
    const result = await runCli(['emulate', 'specialists', '--members', 'many']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--members must be an integer');
  });
});
