import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/load.js';
import { namespaced } from '../../../src/config/mcp-schema.js';

function problems(yaml: string): string[] {
  try {
    parseConfig(`upstreams: {}\n${yaml}`, 'slipstream.yaml');
  } catch (error) {
    if (error instanceof ConfigError) return error.message.split('\n');
    throw error;
  }
  return [];
}

describe('the mcp config key', () => {
  it('fills in pool, timeout and separator defaults', () => {
    const config = parseConfig(
      'upstreams: {}\nmcp:\n  servers:\n    emu: { type: stdio, command: node }\n',
      'slipstream.yaml',
    );
    expect(config.mcp?.separator).toBe('__');
    expect(config.mcp).toMatchObject({ evictableAfter: 60_000, sessionIdle: 30 * 60_000 });
    expect(config.mcp?.servers.emu).toMatchObject({
      type: 'stdio',
      args: [],
      timeout: 30_000,
      pool: { min: 1, max: 4, pingTimeout: 2_000 },
    });
  });

  it('namespaces tools by default, globally or per server off, and allows only loopback hosts by default', () => {
    const config = parseConfig(
      'upstreams: {}\nmcp:\n  namespacing: false\n  allowedHosts: [gw.example.com]\n  servers:\n    a: { type: stdio, command: node }\n    b: { type: stdio, command: node, namespace: true }\n',
      'slipstream.yaml',
    );
    expect(namespaced(config.mcp!, 'a')).toBe(false);
    expect(namespaced(config.mcp!, 'b')).toBe(true);
    expect(config.mcp?.allowedHosts).toEqual(['gw.example.com']);
    const defaults = parseConfig(
      'upstreams: {}\nmcp:\n  servers:\n    a: { type: stdio, command: node }\n',
      'slipstream.yaml',
    );
    expect([namespaced(defaults.mcp!, 'a'), defaults.mcp?.allowedHosts]).toEqual([true, []]);
  });

  it('speaks the era the server offers by default and relays sampling, elicitation and roots', () => {
    const config = parseConfig(
      'upstreams: {}\nmcp:\n  servers:\n    emu: { type: stdio, command: node }\n',
      'slipstream.yaml',
    );
    expect(config.mcp?.servers.emu).toMatchObject({
      era: 'auto',
      clientCapabilities: ['sampling', 'elicitation', 'roots'],
    });
  });

  it('rejects an era that is not a supported MCP revision, at its line', () => {
    const found = problems(
      'mcp:\n  servers:\n    emu: { type: http, url: "http://a/mcp", era: 2024-11-05 }\n',
    );
    expect(found).toEqual([expect.stringMatching(/^slipstream\.yaml:4:\d+ mcp\.servers\.emu\.era: /)]);
  });

  it('points at the offending key with file:line:col', () => {
    const found = problems(`mcp:
  servers:
    emu:
      type: stdio
      command: node
      tools:
        get_quote: { cache: { ttl: soon } }
`);
    expect(found).toEqual([
      expect.stringMatching(
        /^slipstream\.yaml:8:\d+ mcp\.servers\.emu\.tools\.get_quote\.cache\.ttl: expected a duration/,
      ),
    ]);
  });

  it('rejects a pool whose min exceeds its max and an unknown server type', () => {
    expect(
      problems('mcp:\n  servers:\n    emu: { type: stdio, command: node, pool: { min: 5, max: 2 } }\n')[0],
    ).toMatch(/mcp\.servers\.emu\.pool\.min: pool\.min \(5\) exceeds pool\.max \(2\)/);
    expect(problems('mcp:\n  servers:\n    emu: { type: ftp, command: node }\n')[0]).toMatch(
      /^slipstream\.yaml:4:\d+ mcp\.servers\.emu/,
    );
  });

  it('rejects a server name that contains the namespace separator', () => {
    expect(problems('mcp:\n  servers:\n    a__b: { type: stdio, command: node }\n')[0]).toMatch(
      /must not contain the separator "__"/,
    );
  });
});
