import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../../src/errors.js';
import type { McpUpstream } from '../../../src/upstreams/mcp/mcp-upstream.js';
import { startStdioPool } from '../../helpers/mcp-pools.js';

const EMULATOR = fileURLToPath(new URL('../../../emulators/mcp-server.ts', import.meta.url));

const opened: McpUpstream[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((upstream) => upstream.close()));
});

function startPool(era: string, pool: Record<string, unknown>) {
  const server = { type: 'stdio', command: process.execPath, args: ['--import', 'tsx', EMULATOR] };
  return startStdioPool('emu', { ...server, era, pool }, opened);
}

const pidOf = async (upstream: McpUpstream) =>
  (
    (await upstream.callTool('pid', {}, { signal: AbortSignal.timeout(10_000), idempotent: false }))
      .structuredContent as { pid: number }
  ).pid;

describe.each(['2025-11-25', '2026-07-28'])('the stdio pool pinned to %s', (era) => {
  it('fails a call whose process is killed with GW_MCP_SERVER_CRASHED, then serves from a replacement', async () => {
    const upstream = await startPool(era, { min: 1, max: 1 });
    expect(upstream.stats().era).toBe(era === '2025-11-25' ? 'legacy' : 'modern');
    const [before] = upstream.stats().pids;
    const pending = upstream.callTool(
      'sleep',
      { ms: 5_000 },
      { signal: AbortSignal.timeout(10_000), idempotent: false },
    );
    await expect.poll(() => upstream.stats().inFlight, { timeout: 10_000 }).toBe(1);
    process.kill(before!, 'SIGKILL');
    await expect(pending).rejects.toMatchObject({ code: 'GW_MCP_SERVER_CRASHED' });
    const after = await pidOf(upstream);
    expect(after).not.toBe(before);
    expect(upstream.stats()).toMatchObject({ restarts: 1, started: 2 });
  });

  it('recycles a process that stops answering its health ping', async () => {
    const upstream = await startPool(era, { min: 1, max: 1, pingTimeout: '200ms', healthInterval: '60s' });
    const [stuck] = upstream.stats().pids;
    process.kill(stuck!, 'SIGSTOP');
    try {
      const deadline = new AbortController();
      setTimeout(() => deadline.abort(new GatewayError('GW_UPSTREAM_TIMEOUT', 'deadline')), 100);
      await expect(
        upstream.callTool('echo', { text: 'x' }, { signal: deadline.signal, idempotent: false }),
      ).rejects.toMatchObject({ code: 'GW_UPSTREAM_TIMEOUT' });
      await expect
        .poll(() => upstream.stats().ready === 1 && upstream.stats().pids[0] !== stuck, { timeout: 20_000 })
        .toBe(true);
      expect(await pidOf(upstream)).not.toBe(stuck);
    } finally {
      try {
        process.kill(stuck!, 'SIGKILL');
      } catch {
        // already recycled
      }
    }
  });
});
