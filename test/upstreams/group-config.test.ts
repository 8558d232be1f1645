import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';

function problems(yaml: string): string[] {
  try {
    parseConfig(`upstreams: {}\n${yaml}`, 'g.yaml', {});
  } catch (error) {
    if (error instanceof ConfigError) return error.message.split('\n');
    throw error;
  }
  return [];
}

describe('groups config', () => {
  it('fills in deadlines, breaker and pool defaults', () => {
    const config = parseConfig(
      'upstreams: {}\ngroups:\n  team:\n    members: [{ name: a, url: "http://127.0.0.1:1/chat" }]\n',
      'g.yaml',
      {},
    );
    expect(config.groups?.team).toMatchObject({
      memberTimeout: 2_000,
      timeout: 5_000,
      breaker: { threshold: 1, halfOpenAfter: 5_000 },
      pool: { connections: 32, warm: 1, keepAlive: 30_000, connect: 500 },
      maxRequestBytes: 256 * 1024,
    });
    expect(config.groups?.team?.discovery).toBeUndefined();
  });

  it('rejects unknown keys at their line and column', () => {
    expect(
      problems('groups:\n  team:\n    members: [{ name: a, url: "http://127.0.0.1:1" }]\n    quorum: 2\n'),
    ).toEqual(['g.yaml:5:5 groups.team: unknown key "quorum"']);
  });

  it('names a group without members or discovery, duplicate members, and quorum with firstN', () => {
    expect(problems('groups:\n  empty: { memberTimeout: 1s }\n')).toEqual([
      expect.stringContaining('groups.empty.members: a group needs members, discovery or both'),
    ]);
    const both = problems(
      'groups:\n  g:\n    members: [{ name: a, url: "http://h:1" }, { name: a, url: "http://h:2" }]\n    minResponses: 1\n    firstN: 1\n',
    );
    expect(both).toEqual([
      expect.stringContaining('groups.g.members[1].name: duplicate member "a"'),
      expect.stringContaining('groups.g.firstN: use minResponses or firstN, not both'),
    ]);
  });

  it('checks discovery URLs and durations', () => {
    const found = problems('groups:\n  g:\n    discovery: { url: "ftp://x", ttl: soon }\n');
    expect(found).toEqual([
      expect.stringContaining('groups.g.discovery.url: expected an http:// or https:// URL'),
      expect.stringContaining('groups.g.discovery.ttl: expected a duration like "250ms" or "5s"'),
    ]);
  });

  it('takes MCP tool members and names an unknown MCP server at its line and column', () => {
    const mcp =
      'mcp:\n  servers:\n    emu: { type: stdio, command: node }\n' +
      'groups:\n  g:\n    members: [{ name: a, server: emu, tool: echo }, { name: b, url: "http://h:1" }]\n';
    const config = parseConfig(`upstreams: {}\n${mcp}`, 'g.yaml', {});
    expect(config.groups?.g?.members).toEqual([
      { name: 'a', server: 'emu', tool: 'echo' },
      { name: 'b', url: 'http://h:1' },
    ]);
    expect(problems('groups:\n  g:\n    members: [{ name: a, server: nope, tool: echo }]\n')).toEqual([
      'g.yaml:4:34 groups.g.members[0].server: unknown MCP server "nope" (known: none)',
    ]);
  });
});
