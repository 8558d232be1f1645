import type { Tool } from '@modelcontextprotocol/client';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Catalog } from '../../../src/upstreams/mcp/catalog.js';
import type { LoadedList } from '../../../src/upstreams/mcp/mcp-client.js';
import type { McpCacheHint } from '../../../src/upstreams/mcp/mcp-upstream.js';

const tool = (name: string) => ({ name, inputSchema: { type: 'object' } }) as Tool;
const INFO = {
  era: 'modern' as const,
  capabilities: { tools: {} },
  instructions: undefined,
  protocolVersion: undefined,
};

/** A catalogue on a hand-driven clock whose server lists `names` (changed by the test) with `hint`. */
function catalogue(hint: McpCacheHint | undefined) {
  let clock = 0;
  const server = { names: ['a'], loads: 0 };
  const list = (): LoadedList => ({ items: server.names.map(tool), hint });
  const catalog = new Catalog('srv', pino({ level: 'silent' }), () => clock);
  const empty = { items: [], hint: undefined };
  catalog.set(INFO, { tools: list(), resources: empty, resourceTemplates: empty, prompts: empty }, false);
  catalog.reloadWith(() => async () => {
    server.loads++;
    return list();
  });
  const announced: string[] = [];
  catalog.onListChanged((kind) => announced.push(kind));
  return {
    catalog,
    server,
    announced,
    advance: (ms: number) => (clock += ms),
    names: () => catalog.tools().map((t) => t.name),
  };
}

describe('Catalog lists past their SEP-2549 ttlMs', () => {
  it('reloads a list once its ttlMs has passed, and announces it only when it changed', async () => {
    const { catalog, server, announced, advance, names } = catalogue({ ttlMs: 1_000, cacheScope: 'public' });
    server.names = ['a', 'b'];
    advance(999);
    await catalog.refreshExpired();
    expect([server.loads, names()]).toEqual([0, ['a']]);
    advance(1);
    await catalog.refreshExpired();
    expect([server.loads, names(), announced]).toEqual([1, ['a', 'b'], ['tools']]);
    // Fresh again for another ttlMs; then reloaded unchanged, which no listener hears of.
    await catalog.refreshExpired();
    advance(1_000);
    await catalog.refreshExpired();
    expect([server.loads, announced]).toEqual([2, ['tools']]);
  });

  it('keeps the held list when a reload fails, and asks again only one ttlMs later', async () => {
    const { catalog, advance, names } = catalogue({ ttlMs: 1_000, cacheScope: 'public' });
    let attempts = 0;
    catalog.reloadWith(() => () => {
      attempts++;
      return Promise.reject(new Error('server away'));
    });
    advance(1_000);
    await catalog.refreshExpired();
    await catalog.refreshExpired();
    expect([attempts, names()]).toEqual([1, ['a']]);
    advance(1_000);
    await catalog.refreshExpired();
    expect(attempts).toBe(2);
  });

  it('never reloads a list whose server sent ttlMs 0 or no hint at all (a 2025-era server)', async () => {
    for (const hint of [{ ttlMs: 0, cacheScope: 'private' as const }, undefined]) {
      const { catalog, server, advance } = catalogue(hint);
      advance(3_600_000);
      await catalog.refreshExpired();
      expect(server.loads).toBe(0);
    }
  });
});
