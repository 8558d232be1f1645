import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startSpecialists } from '../../emulators/specialists.js';
import type { RunningSpecialists } from '../../emulators/specialists.js';
import { call, emulatorServer, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';

const yamlList = (team: RunningSpecialists) =>
  `[${team.members.map((m) => `{ name: ${m.name}, url: "${m.url}" }`).join(', ')}]`;

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('POST /fanout/:group through the gateway', () => {
  /** Six specialists: four at 5 ms, specialist-05 at 60 ms, specialist-06 at 150 ms. */
  let team: RunningSpecialists;
  /** Three specialists, the last one hung. */
  let hung: RunningSpecialists;
  /** Five specialists: two at 5 ms, three at 5 s. */
  let mixed: RunningSpecialists;
  let gw: RunningGateway;

  beforeAll(async () => {
    team = await startSpecialists({
      members: 6,
      latency: '5ms',
      slow: [
        { count: 1, latency: '150ms' },
        { count: 1, latency: '60ms' },
      ],
    });
    hung = await startSpecialists({ members: 3, latency: '5ms', hung: 1 });
    mixed = await startSpecialists({ members: 5, latency: '5s', slow: [{ count: 2, latency: '5ms' }] });
    gw = await startGateway(`
upstreams: {}
groups:
  team:
    members: ${yamlList(team)}
  hung:
    members: ${yamlList(hung)}
    memberTimeout: 300ms
    breaker: { threshold: 1, halfOpenAfter: 1m }
  first2:
    members: ${yamlList(mixed)}
    firstN: 2
  anyone:
    members: ${yamlList(mixed)}
  discovered:
    discovery: { url: "${team.url}/agents", ttl: 50ms }
  small:
    members: ${yamlList(team)}
    maxRequestBytes: 1kb
`);
  });

  afterAll(async () => {
    await gw?.close();
    await Promise.all([team, hung, mixed].map((t) => t?.close()));
  });

  it('returns every member’s answer in one JSON document, in member order', async () => {
    const response = await post(`${gw.url}/fanout/team`, { message: 'standup' });
    expect(response.status).toBe(200);
    expect(response.headers['x-request-id']).toEqual(expect.any(String));
    expect(response.body.group).toBe('team');
    expect(response.body.results.map((r: any) => r.member)).toEqual(team.members.map((m) => m.name));
    expect(response.body.results[5]).toMatchObject({
      outcome: 'answered',
      status: 200,
      body: { ok: true, agent: 'specialist-06', message: 'standup' },
    });
    expect(response.body.summary).toMatchObject({ members: 6, answered: 6, failed: 0, timedOut: 0 });
  });

  it('calls all members in parallel over connections reused across requests', async () => {
    team.reset();
    for (let i = 0; i < 5; i++) {
      expect((await post(`${gw.url}/fanout/team`, { i })).body.summary.answered).toBe(6);
    }
    const stats = team.stats();
    expect(stats.requests).toBe(30);
    expect(stats.maxInFlight).toBe(6);
    // Warmed at start-up and kept alive: no member saw a new connection for these 30 calls.
    expect(stats.connections).toBe(0);
  });

  it('streams each result as NDJSON the moment it arrives, then a summary line', async () => {
    const before = team.stats().members['specialist-06']!.answered;
    const response = await request(`${gw.url}/fanout/team`, {
      method: 'POST',
      headers: { accept: 'application/x-ndjson' },
      body: JSON.stringify({ message: 'stream' }),
    });
    expect(response.headers['content-type']).toBe('application/x-ndjson');
    let text = '';
    let slowestAnsweredAtFirstChunk: number | undefined;
    for await (const chunk of response.body) {
      // The first result reached the client while the slowest member was still thinking.
      slowestAnsweredAtFirstChunk ??= team.stats().members['specialist-06']!.answered - before;
      text += (chunk as Buffer).toString();
    }
    expect(slowestAnsweredAtFirstChunk).toBe(0);
    const lines = text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines).toHaveLength(7);
    expect(lines.slice(0, 6).every((l) => l.type === 'result')).toBe(true);
    expect(lines.slice(4, 6).map((l) => l.member)).toEqual(['specialist-05', 'specialist-06']);
    expect(lines[6]).toMatchObject({ type: 'summary', group: 'team', answered: 6 });
  });

  it('streams the same results as Server-Sent Events when asked for text/event-stream', async () => {
    const response = await request(`${gw.url}/fanout/team`, {
      method: 'POST',
      headers: { accept: 'text/event-stream' },
      body: '{"message":"sse"}',
    });
    expect(response.headers['content-type']).toContain('text/event-stream');
    const frames = (await response.body.text()).trim().split('\n\n');
    expect(frames).toHaveLength(7);
    expect(frames[0]).toMatch(/^event: result\ndata: \{"member":"specialist-0[1-4]"/);
    expect(frames[6]).toMatch(/^event: summary\ndata: \{"group":"team"/);
  });

  it('costs a hung member its deadline once, then skips it without calling it', async () => {
    const first = await post(`${gw.url}/fanout/hung`, { message: 'x' });
    expect(first.status).toBe(200);
    expect(first.body.summary).toMatchObject({
      answered: 2,
      timedOut: 1,
      outcomes: { timedOut: ['specialist-03'] },
    });
    expect(first.body.summary.durationMs).toBeGreaterThanOrEqual(299);
    for (let i = 0; i < 3; i++) {
      const later = await post(`${gw.url}/fanout/hung`, { message: 'x' });
      expect(later.body.summary).toMatchObject({ answered: 2, skipped: 1, timedOut: 0 });
      expect(later.body.results[2]).toMatchObject({ outcome: 'skipped', error: { code: 'GW_BREAKER_OPEN' } });
    }
    // One chat message only (warm-up probes are not chat requests).
    expect(hung.stats().members['specialist-03']!.requests).toBe(1);
  });

  it('with firstN, answers with the first two and cancels the stragglers, which see the abort', async () => {
    mixed.reset();
    const response = await post(`${gw.url}/fanout/first2`, { message: 'race' });
    expect(response.body.summary).toMatchObject({
      answered: 2,
      cancelled: 3,
      outcomes: { answered: ['specialist-04', 'specialist-05'] },
    });
    await expect.poll(() => mixed.stats().aborted).toBe(3);
  });

  it('takes a quorum or first-N per request, overriding the group, and rejects bad ones', async () => {
    mixed.reset();
    const quorum = await post(`${gw.url}/fanout/anyone?minResponses=2`, { message: 'vote' });
    expect(quorum.body.summary).toMatchObject({
      answered: 2,
      cancelled: 3,
      quorum: { required: 2, met: true },
    });
    const one = await post(`${gw.url}/fanout/first2?firstN=1`, { message: 'race' });
    expect(one.body.summary).toMatchObject({ answered: 1, cancelled: 4 });
    // The three 5 s members of each request see the abort (the other fast one may have answered first).
    await expect.poll(() => mixed.stats().aborted).toBeGreaterThanOrEqual(6);

    for (const query of [
      'firstN=0',
      'minResponses=1.5',
      'firstN=0x2',
      'firstN=999',
      'firstN=1&minResponses=1',
    ]) {
      const bad = await post(`${gw.url}/fanout/anyone?${query}`, { message: 'x' });
      expect(bad.status, query).toBe(400);
      expect(bad.body.error.code).toBe('GW_BAD_REQUEST');
    }
  });

  it('fetches discovery once at start-up, and keeps serving the cached list when discovery fails', async () => {
    const refreshesBefore = team.stats().discoveryRequests;
    expect(refreshesBefore).toBeLessThanOrEqual(1);
    team.configure({ discovery: { fail: true } });
    try {
      // Fan-outs go on until one has triggered a refresh past the TTL and that refresh has failed.
      const answered: number[] = [];
      await expect
        .poll(async () => {
          answered.push((await post(`${gw.url}/fanout/discovered`, { message: 'x' })).body.summary.answered);
          return (await call(`${gw.adminUrl}/metrics`)).body as string;
        })
        .toContain('slipstream_discovery_refreshes_total{group="discovered",ok="false"}');
      for (let i = 0; i < 3; i++) {
        const response = await post(`${gw.url}/fanout/discovered`, { message: 'x' });
        answered.push(response.body.summary.answered);
      }
      expect(answered.every((n) => n === 6)).toBe(true);
    } finally {
      team.configure({ discovery: { fail: false } });
    }
  });

  it('publishes per-member outcomes, breaker state and completion time as metrics', async () => {
    const metrics = (await call(`${gw.adminUrl}/metrics`)).body as string;
    expect(metrics).toMatch(
      /slipstream_fanout_member_outcomes_total\{group="hung",member="specialist-03",outcome="skipped"\} [1-9]/,
    );
    expect(metrics).toContain('slipstream_breaker_state{name="fanout:hung/specialist-03"} 1');
    expect(metrics).toMatch(/slipstream_fanout_duration_seconds_count\{group="team"\} [1-9]/);
    expect(metrics).toContain(
      'slipstream_fanout_member_duration_seconds_bucket{le="0.25",group="team",member="specialist-06",outcome="answered"}',
    );
  });

  it('answers clear errors for an unknown group, a wrong method, and bad or oversized bodies', async () => {
    const unknown = await post(`${gw.url}/fanout/nobody`, { message: 'x' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toEqual({
      code: 'GW_GROUP_NOT_FOUND',
      message: 'no fan-out group "nobody" (known: team, hung, first2, anyone, discovered, small)',
    });
    const get = await call(`${gw.url}/fanout/team`);
    expect(get.status).toBe(405);
    expect(get.body.error.code).toBe('GW_METHOD_NOT_ALLOWED');
    const bad = await post(`${gw.url}/fanout/team`, '{"message":');
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('GW_BAD_REQUEST');
    expect(bad.body.error.message).toContain('not valid JSON');
    const empty = await post(`${gw.url}/fanout/team`, '');
    expect(empty.status).toBe(400);
    expect(empty.body.error.message).toBe('a JSON message body is required');
    const large = await post(`${gw.url}/fanout/small`, { message: 'x'.repeat(2000) });
    expect(large.status).toBe(413);
    expect(large.body.error.code).toBe('GW_PAYLOAD_TOO_LARGE');
  });
});

describe('fan-out members that are MCP tools', () => {
  let web: RunningSpecialists;
  let gw: RunningGateway;

  beforeAll(async () => {
    web = await startSpecialists({ members: 1, latency: '5ms' });
    gw = await startGateway(`
upstreams: {}
mcp:
  servers:
    emu: ${emulatorServer({ extra: 'timeout: 5s' })}
groups:
  mixed:
    members:
      - { name: web, url: "${web.members[0]!.url}" }
      - { name: echo, server: emu, tool: echo }
      - { name: failing, server: emu, tool: fail }
      - { name: missing, server: emu, tool: no_such_tool }
    breaker: { threshold: 1, halfOpenAfter: 1m }
  hung:
    members:
      - { name: hang, server: emu, tool: hang }
      - { name: echo, server: emu, tool: echo }
    memberTimeout: 300ms
    breaker: { threshold: 1, halfOpenAfter: 1m }
  crashing:
    members:
      - { name: crash, server: emu, tool: crash }
    breaker: { threshold: 1, halfOpenAfter: 200ms }
`);
  });

  afterAll(async () => {
    await gw?.close();
    await web?.close();
  });

  it('sends the message as tool arguments beside HTTP members and reports each tool outcome', async () => {
    // One message for every tool: their input schemas accept properties they do not use.
    const first = await post(`${gw.url}/fanout/mixed`, { text: 'hi', message: 'boom' });
    expect(first.status).toBe(200);
    const [httpMember, echo, failing, missing] = first.body.results;
    expect(httpMember).toMatchObject({ member: 'web', outcome: 'answered', status: 200 });
    expect(echo).toMatchObject({
      member: 'echo',
      outcome: 'answered',
      body: { content: [{ type: 'text', text: 'hi' }] },
    });
    expect(failing).toMatchObject({
      member: 'failing',
      outcome: 'failed',
      body: { isError: true },
      error: { code: 'GW_TOOL_ERROR', message: expect.stringContaining('boom') },
    });
    expect(missing).toMatchObject({
      member: 'missing',
      outcome: 'failed',
      error: { code: 'GW_TOOL_NOT_FOUND' },
    });

    // A missing tool is the member's failure (its breaker opens); a tool's own error is an answer.
    const second = await post(`${gw.url}/fanout/mixed`, { text: 'hi', message: 'boom' });
    expect(second.body.summary.outcomes).toMatchObject({
      answered: ['web', 'echo'],
      failed: ['failing'],
      skipped: ['missing'],
    });
  });

  it("reports arguments the tool's schema rejects without holding the member against it", async () => {
    const bad = await post(`${gw.url}/fanout/mixed`, { text: 42 });
    expect(bad.body.results[1]).toMatchObject({
      member: 'echo',
      outcome: 'failed',
      error: { code: 'GW_TOOL_INVALID_ARGUMENTS' },
    });
    const good = await post(`${gw.url}/fanout/mixed`, { text: 'again', message: 'x' });
    expect(good.body.results[1]).toMatchObject({ member: 'echo', outcome: 'answered' });
  });

  it('costs a hung tool its deadline once, then skips it', async () => {
    const started = performance.now();
    const first = await post(`${gw.url}/fanout/hung`, { text: 'hi' });
    const firstMs = performance.now() - started;
    expect(first.body.summary.outcomes).toMatchObject({ timedOut: ['hang'], answered: ['echo'] });
    expect(firstMs).toBeGreaterThanOrEqual(290);
    const second = await post(`${gw.url}/fanout/hung`, { text: 'hi' });
    expect(second.body.summary.outcomes).toMatchObject({ skipped: ['hang'], answered: ['echo'] });
  });

  // Last: it kills the emulator process (the pool restarts it).
  it('opens the breaker of a tool whose server crashes, and readmits the member once it lists the tool again', async () => {
    const first = await post(`${gw.url}/fanout/crashing`, {});
    expect(first.body.results[0]).toMatchObject({
      outcome: 'failed',
      error: { code: 'GW_MCP_SERVER_CRASHED' },
    });
    const second = await post(`${gw.url}/fanout/crashing`, {});
    expect(second.body.results[0]).toMatchObject({ outcome: 'skipped' });
    // After halfOpenAfter the background probe readmits it: the member is called (and fails) again.
    await expect
      .poll(async () => (await post(`${gw.url}/fanout/crashing`, {})).body.results[0].outcome, {
        timeout: 5_000,
        interval: 100,
      })
      .toBe('failed');
  });
});
