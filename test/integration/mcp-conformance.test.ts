import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSummary, runConformance } from '../../scripts/mcp-conformance.js';
import type { RevisionResult } from '../../scripts/mcp-conformance.js';
import { startConformanceHttp } from '../fixtures/mcp-conformance-server.js';
import type { ConformanceHttpServer } from '../fixtures/mcp-conformance-server.js';
import { startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';

/** Scored scenarios in the suite's frozen requirement sets (0.2.0-alpha.12). */
const SCORED = { '2025-11-25': 30, '2026-07-28': 37 } as const;

describe('the conformance summary parser', () => {
  it('counts scored scenarios apart from the not-scored ones the suite lists after its summary', () => {
    const output = [
      'noise before',
      '=== SUMMARY ===',
      '✓ server-initialize: 3 passed, 0 failed',
      '✗ tools-call-sampling: 1 passed, 1 failed',
      '✗ json-schema-2020-12: 1 passed, 1 failed',
      '',
      'Total: 5 passed, 2 failed',
      '',
      'Not scored for 2025-11-25: 1 scenario(s) run, 1 failing. These do not affect conformance.',
      '  ✗ json-schema-2020-12 (pending)',
    ].join('\n');
    expect(parseSummary(output)).toEqual([
      { scenario: 'server-initialize', passedChecks: 3, failedChecks: 0, scored: true },
      { scenario: 'tools-call-sampling', passedChecks: 1, failedChecks: 1, scored: true },
      { scenario: 'json-schema-2020-12', passedChecks: 1, failedChecks: 1, scored: false },
    ]);
  });

  it('refuses output without a summary instead of reporting zero failures', () => {
    expect(() => parseSummary('Error: fetch failed')).toThrow(/no summary/);
  });
});

const FIXTURE = fileURLToPath(new URL('../fixtures/mcp-conformance-server.ts', import.meta.url));

/** Every scored scenario passed (or is listed with its reason), for both revisions. */
const EVERY_SCENARIO = (['2025-11-25', '2026-07-28'] as const).map((revision) => ({
  revision,
  passed: SCORED[revision],
  scored: SCORED[revision],
  unexpected: [],
  stale: [],
}));

/** The suite's results for `target`, or a loud skip (a CI failure) when the suite could not be installed. */
function judged(results: RevisionResult[] | undefined, installError: unknown, skip: () => void) {
  if (results === undefined) {
    const message = `the conformance suite could not be installed or run: ${String(installError)}`;
    if (process.env.CI === 'true') throw new Error(message);
    process.stderr.write(`\n!!! SKIPPING: ${message}\n\n`);
    skip();
    return [];
  }
  return results.map((r) => ({
    revision: r.revision,
    passed: r.passed,
    scored: r.scored,
    unexpected: r.unexpected,
    stale: r.stale,
  }));
}

/**
 * The official suite (pinned 0.2.0-alpha.12, on Node 22 from npm) against the project's reference fixture:
 * direct (the baseline), then through Slipstream fronting the same fixture as an HTTP upstream and as a
 * stdio upstream, namespacing off (the suite calls the fixture's tools by their own names). Installing the
 * suite needs the npm registry; a machine without it skips loudly, CI fails.
 */
describe.each([
  ['direct', 'the fixture direct'],
  ['slipstream-http', 'Slipstream fronting the fixture as an HTTP upstream (namespacing off)'],
  ['slipstream-stdio', 'Slipstream fronting the fixture as a stdio upstream (namespacing off)'],
] as const)('the official MCP conformance suite: %s', (target, what) => {
  let fixture: ConformanceHttpServer;
  let gateway: RunningGateway | undefined;
  let results: RevisionResult[] | undefined;
  let installError: unknown;

  beforeAll(async () => {
    fixture = await startConformanceHttp();
    let url = fixture.url;
    if (target !== 'direct') {
      const upstream =
        target === 'slipstream-http'
          ? `{ type: http, url: ${fixture.url} }`
          : `{ type: stdio, command: ${JSON.stringify(process.execPath)}, args: ${JSON.stringify(['--import', 'tsx', FIXTURE, '--stdio'])}, pool: { min: 1, max: 2 } }`;
      gateway = await startGateway(`
upstreams: {}
mcp:
  namespacing: false
  servers:
    fixture: ${upstream}
`);
      url = `${gateway.url}/mcp`;
    }
    try {
      results = await runConformance({ url, target, log: () => {} });
    } catch (error) {
      installError = error;
    }
  }, 900_000);
  afterAll(async () => {
    await gateway?.close();
    await fixture?.close();
  });

  it(`passes every scored scenario of 2025-11-25 and 2026-07-28 against ${what}`, (ctx) => {
    expect(judged(results, installError, () => ctx.skip())).toEqual(EVERY_SCENARIO);
  });
});

describe('the conformance fixture over stdio', () => {
  const open: Client[] = [];
  afterAll(async () => {
    await Promise.all(open.map((client) => client.close()));
  });

  const connect = async (mode: 'legacy' | { pin: string }) => {
    const client = new Client(
      { name: 'fixture-test', version: '1.0.0' },
      { capabilities: { sampling: {} }, versionNegotiation: { mode } },
    );
    client.setRequestHandler('sampling/createMessage', (request) => ({
      role: 'assistant',
      content: { type: 'text', text: `echo ${JSON.stringify(request.params.messages[0]?.content)}` },
      model: 'test-model',
    }));
    open.push(client);
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: ['--import', 'tsx', FIXTURE, '--stdio'],
        stderr: 'pipe',
      }),
    );
    return client;
  };

  it.each([
    ['2025-11-25', 'legacy' as const, 'legacy'],
    ['2026-07-28', { pin: '2026-07-28' }, 'modern'],
  ])('serves a %s client its tools and relays a sampling request to it', async (_revision, mode, era) => {
    const client = await connect(mode);
    expect(client.getProtocolEra()).toBe(era);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name)).toContain('test_sampling');
    const result = await client.callTool({ name: 'test_sampling', arguments: { prompt: 'hi there' } });
    expect(result.content).toEqual([{ type: 'text', text: expect.stringContaining('hi there') }]);
  });
});
