import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { mcpSchema } from '../../../src/config/mcp-schema.js';
import type { StdioServerConfig } from '../../../src/config/mcp-schema.js';
import { GatewayError } from '../../../src/errors.js';
import { events } from '../../../src/telemetry/events.js';
import type { McpProcessEvent } from '../../../src/telemetry/events.js';
import type { McpUpstream } from '../../../src/upstreams/mcp/mcp-upstream.js';
import { stdioPool } from '../../../src/upstreams/mcp/stdio-pool.js';

const EMULATOR = fileURLToPath(new URL('../../../emulators/mcp-server.ts', import.meta.url));
const STUBBORN = fileURLToPath(new URL('../../fixtures/stubborn-mcp-server.ts', import.meta.url));

function serverConfig(pool: Record<string, unknown>, script = EMULATOR): StdioServerConfig {
  const parsed = mcpSchema.parse({
    servers: {
      emu: { type: 'stdio', command: process.execPath, args: ['--import', 'tsx', script], pool },
    },
  });
  return parsed.servers.emu as StdioServerConfig;
}

function capturingLogger(): { logger: pino.Logger; lines: () => any[] } {
  const lines: any[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines: () => lines };
}

const opened: McpUpstream[] = [];
async function startPool(
  pool: Record<string, unknown>,
  logger = pino({ level: 'silent' }),
  script = EMULATOR,
) {
  const upstream = stdioPool('emu', serverConfig(pool, script), logger);
  opened.push(upstream);
  await upstream.start();
  return upstream;
}

function call(upstream: McpUpstream, name: string, args: Record<string, unknown> = {}, idempotent = false) {
  return upstream.callTool(name, args, { signal: AbortSignal.timeout(10_000), idempotent });
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((u) => u.close()));
});

describe('the supervised stdio pool', () => {
  it('spawns and initializes each pool slot once for 1,000 calls', async () => {
    const pool = await startPool({ min: 2, max: 2 });
    for (let i = 0; i < 1000; i += 50) {
      const batch = Array.from({ length: 50 }, (_, j) => call(pool, 'echo', { text: String(i + j) }));
      const results = await Promise.all(batch);
      expect(results[49]!.content).toEqual([{ type: 'text', text: String(i + 49) }]);
    }
    const perProcess = new Map<number, any>();
    for (let i = 0; i < 20 && perProcess.size < 2; i++) {
      const [a, b] = await Promise.all([call(pool, 'stats'), call(pool, 'stats')]);
      for (const r of [a, b]) perProcess.set((r.structuredContent as any).pid, r.structuredContent);
    }
    expect(perProcess.size).toBe(2);
    for (const stats of perProcess.values()) expect(stats.initializeCount).toBe(1);
    const totalCalls = [...perProcess.values()].reduce((sum, s) => sum + s.calls, 0);
    expect(totalCalls).toBeGreaterThanOrEqual(1000);
    expect(pool.stats()).toMatchObject({ started: 2, restarts: 0, ready: 2 });
  });

  it('spreads concurrent calls across the processes (least in flight)', async () => {
    const pool = await startPool({ min: 4, max: 4 });
    const results = await Promise.all(Array.from({ length: 16 }, () => call(pool, 'sleep', { ms: 50 })));
    const pids = new Set(results.map((r) => (r.structuredContent as any).pid));
    expect(pids.size).toBe(4);
    expect(new Set(pool.stats().pids)).toEqual(pids);
  });

  it('fails the call of a process killed mid-call with GW_MCP_SERVER_CRASHED and restarts it', async () => {
    const pool = await startPool({ min: 1, max: 1 });
    const [before] = pool.stats().pids;
    const seen: McpProcessEvent[] = [];
    const record = (message: unknown) => seen.push(message as McpProcessEvent);
    events.mcpProcess.subscribe(record);
    const pending = call(pool, 'sleep', { ms: 5_000 });
    await waitFor(() => pool.stats().inFlight === 1);
    process.kill(before!, 'SIGKILL');
    const error = await pending.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(GatewayError);
    expect((error as GatewayError).code).toBe('GW_MCP_SERVER_CRASHED');
    const next = await call(pool, 'pid');
    const after = (next.structuredContent as any).pid;
    expect(after).not.toBe(before);
    expect(pool.stats()).toMatchObject({ restarts: 1, started: 2 });
    expect(seen).toEqual([
      {
        server: 'emu',
        event: 'exited',
        pid: before,
        reason: expect.stringMatching(/^exited unexpectedly after \d+\.\d s$/),
      },
      { server: 'emu', event: 'started', pid: after },
    ]);
    events.mcpProcess.unsubscribe(record);
  });

  it('fails a call whose process exits mid-call (the crash tool)', async () => {
    const pool = await startPool({ min: 1, max: 1 });
    await expect(call(pool, 'crash')).rejects.toMatchObject({ code: 'GW_MCP_SERVER_CRASHED' });
    await expect(call(pool, 'echo', { text: 'back' })).resolves.toMatchObject({
      content: [{ type: 'text', text: 'back' }],
    });
  });

  it('sends an idempotent call lost to a crash once more, on a live process', async () => {
    const pool = await startPool({ min: 2, max: 2 });
    // Long enough that the busy process is still busy while findBusyPid asks the pool four times, loaded or not.
    const pending = call(pool, 'sleep', { ms: 2_000 }, true);
    await waitFor(() => pool.stats().inFlight === 1);
    const busy = await findBusyPid(pool);
    process.kill(busy, 'SIGKILL');
    const result = await pending;
    expect((result.structuredContent as any).pid).not.toBe(busy);
  });

  it('recycles a process that stops answering and serves from its replacement', async () => {
    const pool = await startPool({ min: 1, max: 1, pingTimeout: '200ms', healthInterval: '60s' });
    const [stuck] = pool.stats().pids;
    process.kill(stuck!, 'SIGSTOP');
    try {
      // The call's deadline passes, which triggers a ping; no answer within 200 ms recycles the process.
      const deadline = new AbortController();
      setTimeout(() => deadline.abort(new GatewayError('GW_UPSTREAM_TIMEOUT', 'deadline')), 100);
      await expect(
        pool.callTool('echo', { text: 'x' }, { signal: deadline.signal, idempotent: false }),
      ).rejects.toMatchObject({ code: 'GW_UPSTREAM_TIMEOUT' });
      await waitFor(() => pool.stats().ready === 1 && pool.stats().pids[0] !== stuck);
      const result = await call(pool, 'pid');
      expect((result.structuredContent as any).pid).not.toBe(stuck);
    } finally {
      try {
        process.kill(stuck!, 'SIGKILL');
      } catch {
        // already recycled
      }
    }
  });

  it('pings every healthInterval: a process frozen between calls is recycled without any call', async () => {
    // A frozen process never answers, whatever the timeout: 2 s leaves a live one time on a loaded machine.
    const pool = await startPool({ min: 1, max: 1, pingTimeout: '2s', healthInterval: '300ms' });
    const [frozen] = pool.stats().pids;
    process.kill(frozen!, 'SIGSTOP');
    try {
      // No call is made, so no deadline can trigger a ping: only the periodic one finds it.
      await waitFor(() => pool.stats().ready === 1 && pool.stats().pids[0] !== frozen);
      expect(alive(frozen!)).toBe(false);
      // Idempotent: on a loaded machine the fresh process may miss a ping too and be recycled mid-call.
      const result = await call(pool, 'pid', {}, true);
      expect((result.structuredContent as any).pid).not.toBe(frozen);
    } finally {
      if (alive(frozen!)) process.kill(frozen!, 'SIGKILL');
    }
  });

  it('stops a process by closing stdin, then SIGTERM, then SIGKILL', async () => {
    const { logger, lines } = capturingLogger();
    const pool = await startPool({ min: 1, max: 1 }, logger, STUBBORN);
    const [pid] = pool.stats().pids;
    await waitFor(() => lines().some((l) => l.msg === 'stubborn: ready'));
    await pool.close();
    // The child logged each step it saw, in order; it ignores both, so only SIGKILL ended it.
    const steps = lines().filter((l) => /stdin closed|SIGTERM/.test(String(l.msg)));
    expect(steps.map((l) => l.msg)).toEqual(['stubborn: stdin closed', 'stubborn: SIGTERM ignored']);
    expect(steps[1].time - steps[0].time).toBeGreaterThanOrEqual(1_900); // stdin had 2 s to work
    await waitFor(() => !alive(pid!)); // SIGKILL is sent as close() returns; the kernel reaps it then
  }, 20_000);

  it('logs child stderr tagged with the server name', async () => {
    const { logger, lines } = capturingLogger();
    await startPool({ min: 1, max: 1 }, logger);
    await waitFor(() => lines().some((l) => String(l.msg).includes('mcp emulator ready')));
    const line = lines().find((l) => String(l.msg).includes('mcp emulator ready'));
    expect(line).toMatchObject({ mcpServer: 'emu', pid: expect.any(Number) });
  });

  it('refreshes the cached tool list on notifications/tools/list_changed', async () => {
    const pool = await startPool({ min: 1, max: 1 });
    expect(pool.tools().map((t) => t.name)).not.toContain('late_tool');
    let changed = 0;
    pool.onToolsChanged(() => changed++);
    await call(pool, 'add_tool', { name: 'late_tool' });
    await waitFor(() => changed > 0);
    expect(pool.tools().map((t) => t.name)).toContain('late_tool');
  });

  it('stops every process on close', async () => {
    const pool = await startPool({ min: 2, max: 2 });
    const pids = pool.stats().pids;
    await pool.close();
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });
});

async function findBusyPid(pool: McpUpstream): Promise<number> {
  // The busy process is the one not answering `pid` first: ask both twice and take the missing one.
  const seen = new Set<number>();
  for (let i = 0; i < 4; i++) seen.add(((await call(pool, 'pid')).structuredContent as any).pid);
  const busy = pool.stats().pids.find((pid) => !seen.has(pid));
  if (busy === undefined) throw new Error('no busy process found');
  return busy;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
