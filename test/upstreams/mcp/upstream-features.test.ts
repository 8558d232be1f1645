import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { mcpSchema } from '../../../src/config/mcp-schema.js';
import type { HttpServerConfig, StdioServerConfig } from '../../../src/config/mcp-schema.js';
import { httpSession } from '../../../src/upstreams/mcp/http-session.js';
import type {
  McpRequestOptions,
  McpServerRequest,
  McpUpstream,
} from '../../../src/upstreams/mcp/mcp-upstream.js';
import { stdioPool } from '../../../src/upstreams/mcp/stdio-pool.js';
import { startConformanceHttp } from '../../fixtures/mcp-conformance-server.js';
import type { ConformanceHttpServer } from '../../fixtures/mcp-conformance-server.js';
import { startStdioPool } from '../../helpers/mcp-pools.js';

const FIXTURE = fileURLToPath(new URL('../../fixtures/mcp-conformance-server.ts', import.meta.url));
const ERAS = ['2025-11-25', '2026-07-28'] as const;
type Era = (typeof ERAS)[number];
const silent = pino({ level: 'silent' });
/** Makes the fixture refuse the 2026-07-28 opening, so `auto` settles on 2025-11-25. */
const eraEnv = (era: Era): Record<string, string> =>
  era === '2025-11-25' ? { MCP_FIXTURE_LEGACY_ONLY: '1' } : {};

function stdioConfig(era: string, pool: Record<string, unknown> = {}, env: Record<string, string> = {}) {
  const parsed = mcpSchema.parse({
    servers: {
      fx: {
        type: 'stdio',
        command: process.execPath,
        args: ['--import', 'tsx', FIXTURE, '--stdio'],
        era,
        pool,
        env,
      },
    },
  });
  return parsed.servers.fx as StdioServerConfig;
}

const opened: McpUpstream[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((upstream) => upstream.close()));
});

async function startPool(era: string, pool: Record<string, unknown> = { min: 1, max: 1 }, env = {}) {
  const upstream = stdioPool('fx', stdioConfig(era, pool, env), silent);
  opened.push(upstream);
  await upstream.start();
  return upstream;
}

let http: ConformanceHttpServer | undefined;
afterAll(async () => {
  await http?.close();
});
async function startHttp(era: string) {
  http ??= await startConformanceHttp();
  const parsed = mcpSchema.parse({ servers: { fx: { type: 'http', url: http.url, era } } });
  const upstream = httpSession('fx', parsed.servers.fx as HttpServerConfig, silent);
  opened.push(upstream);
  await upstream.start();
  return upstream;
}

const TRANSPORTS = [
  ['stdio', (era: Era) => startPool(era)],
  ['http', (era: Era) => startHttp(era)],
] as const;

function options(extra: Partial<McpRequestOptions> = {}): McpRequestOptions {
  return { signal: AbortSignal.timeout(10_000), ...extra };
}

function textOf(result: Record<string, unknown>): string {
  const content = result.content as Array<{ type: string; text?: string }>;
  return content.map((block) => block.text ?? '').join('');
}

describe.each(TRANSPORTS)('an MCP upstream over %s', (_transport, start) => {
  describe.each(ERAS)('speaking %s', (era) => {
    it('reports its era and capabilities and lists tools, resources, templates and prompts', async () => {
      const upstream = await start(era);
      const info = upstream.info()!;
      expect(info.era).toBe(era === '2025-11-25' ? 'legacy' : 'modern');
      expect(info.protocolVersion).toBe(era);
      expect(info.capabilities).toMatchObject({
        resources: { subscribe: true },
        prompts: {},
        completions: {},
      });
      expect(upstream.tools().map((tool) => tool.name)).toContain('test_sampling');
      expect(upstream.resources().map((resource) => resource.uri)).toContain('test://static-text');
      expect(upstream.resourceTemplates().map((template) => template.uriTemplate)).toEqual([
        'test://template/{id}/data',
      ]);
      expect(upstream.prompts().map((prompt) => prompt.name)).toContain('test_prompt_with_arguments');
      expect(upstream.stats().era).toBe(info.era);
      // SEP-2549 hints come with 2026-07-28 lists only (the fixture sends a minute, public).
      const hint = era === '2026-07-28' ? { ttlMs: 60_000, cacheScope: 'public' } : undefined;
      for (const kind of ['tools', 'resources', 'resourceTemplates', 'prompts'] as const) {
        expect(upstream.listCacheHint(kind)).toEqual(hint);
      }
    });

    it('reads resources, gets prompts and completes arguments through request()', async () => {
      const upstream = await start(era);
      const read = await upstream.request('resources/read', { uri: 'test://template/42/data' }, options());
      expect(read.contents).toEqual([expect.objectContaining({ uri: 'test://template/42/data' })]);
      const prompt = await upstream.request(
        'prompts/get',
        { name: 'test_prompt_with_arguments', arguments: { arg1: 'a', arg2: 'b' } },
        options(),
      );
      expect(JSON.stringify(prompt.messages)).toContain("arg1='a', arg2='b'");
      const completion = await upstream.request(
        'completion/complete',
        {
          ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' },
          argument: { name: 'arg1', value: 'par' },
        },
        options(),
      );
      expect((completion.completion as { values: string[] }).values).toEqual(['paris', 'park', 'party']);
    });

    it("rejects a read of an unknown resource as the request's fault, with the server's code", async () => {
      const upstream = await start(era);
      await expect(
        upstream.request('resources/read', { uri: 'test://no-such-resource' }, options()),
      ).rejects.toMatchObject({ code: 'GW_MCP_REQUEST_REJECTED', data: { rpcCode: -32602 } });
    });

    it('forwards the request _meta (traceparent) to the server', async () => {
      const upstream = await start(era);
      const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      const result = await upstream.callTool(
        'test_echo_meta',
        {},
        { ...options({ meta: { traceparent } }), idempotent: false },
      );
      expect(JSON.parse(textOf(result))).toMatchObject({ traceparent });
    });

    it('relays a sampling request to the handler of the call that caused it', async () => {
      const upstream = await start(era);
      const seen: McpServerRequest[] = [];
      const result = await upstream.callTool(
        'test_sampling',
        { prompt: 'capital of France?' },
        {
          ...options(),
          idempotent: false,
          clientCapabilities: { sampling: {} },
          onServerRequest: async (request) => {
            seen.push(request);
            return { role: 'assistant', content: { type: 'text', text: 'Paris' }, model: 'test-model' };
          },
        },
      );
      expect(textOf(result)).toBe('LLM response: Paris');
      expect(seen).toEqual([
        { method: 'sampling/createMessage', params: expect.objectContaining({ maxTokens: 100 }) },
      ]);
    });

    it('relays an elicitation and a roots request the same way', async () => {
      const upstream = await start(era);
      const methods: string[] = [];
      const result = await upstream.callTool(
        'test_input_required_result_multiple_inputs',
        {},
        {
          ...options(),
          idempotent: false,
          clientCapabilities: { sampling: {}, elicitation: {}, roots: {} },
          onServerRequest: async (request) => {
            methods.push(request.method);
            if (request.method === 'elicitation/create')
              return { action: 'accept', content: { name: 'Ada' } };
            if (request.method === 'roots/list') return { roots: [{ uri: 'file:///work', name: 'work' }] };
            return { role: 'assistant', content: { type: 'text', text: 'hello' }, model: 'test-model' };
          },
        },
      );
      expect(textOf(result)).toBe('All three inputs received.');
      expect(methods.sort()).toEqual(['elicitation/create', 'roots/list', 'sampling/createMessage']);
    });

    it('never asks a client for a capability it did not declare', async () => {
      const upstream = await start(era);
      let asked = 0;
      const call = upstream.callTool(
        'test_sampling',
        { prompt: 'hi' },
        {
          ...options(),
          idempotent: false,
          onServerRequest: async () => {
            asked++;
            return {};
          },
        },
      );
      if (era === '2026-07-28') {
        // The server's own gate: the request's _meta declared no sampling (spec 2026-07-28, -32021).
        await expect(call).rejects.toMatchObject({
          code: 'GW_MCP_REQUEST_REJECTED',
          data: { rpcCode: -32021 },
        });
      } else {
        // The 2025 session declared the union; the gateway refuses on the caller's behalf and the tool says so.
        const result = await call.catch((error: unknown) => error);
        expect(JSON.stringify(result)).toMatch(/does not support sampling/);
      }
      expect(asked).toBe(0);
    });
  });
});

describe.each(ERAS)('a stdio pool speaking %s', (era) => {
  it('gives each concurrent call its own log lines, on a one-process pool', async () => {
    const upstream = await startPool(era, { min: 1, max: 1 });
    if (era === '2025-11-25') await upstream.request('logging/setLevel', { level: 'info' }, options());
    const lines: string[][] = [[], []];
    const meta = era === '2026-07-28' ? { 'io.modelcontextprotocol/logLevel': 'info' } : undefined;
    await Promise.all(
      lines.map((own) =>
        upstream.callTool(
          'test_tool_with_logging',
          {},
          {
            ...options(),
            idempotent: false,
            ...(meta === undefined ? {} : { meta }),
            onNotification: (notification) => own.push(String(notification.params?.data)),
          },
        ),
      ),
    );
    const expected = ['Tool execution started', 'Tool processing data', 'Tool execution completed'];
    expect(lines).toEqual([expected, expected]);
  });

  it('probes the era once per pool, and not again when it replaces a process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-spawns-'));
    const spawnLog = join(dir, 'spawns');
    const upstream = await startPool(
      'auto',
      { min: 3, max: 3 },
      { MCP_FIXTURE_SPAWN_LOG: spawnLog, ...eraEnv(era) },
    );
    const spawned = () => readFileSync(spawnLog, 'utf8').trim().split('\n').length;
    // A 2026-07-28 connect from a cached verdict costs no round trip: one call on each process proves it ran.
    const touchAll = () =>
      Promise.all(
        [1, 2, 3].map(() =>
          upstream.callTool('test_tool_with_progress', {}, { ...options(), idempotent: false }),
        ),
      );
    await touchAll();
    // Three pool processes and one short-lived probe sibling (the SDK's stdio probe), not one probe each.
    expect(spawned()).toBe(4);
    const [victim] = upstream.stats().pids;
    process.kill(victim!, 'SIGKILL');
    await expect
      .poll(() => upstream.stats().ready === 3 && !upstream.stats().pids.includes(victim!), {
        timeout: 30_000,
      })
      .toBe(true);
    await touchAll();
    expect(spawned()).toBe(5);
    expect(upstream.stats().era).toBe(era === '2025-11-25' ? 'legacy' : 'modern');
  });
});

describe('a 2026-07-28 stdio pool', () => {
  it('delivers resources/updated for a subscribed URI over its subscriptions/listen stream', async () => {
    const emulator = fileURLToPath(new URL('../../../emulators/mcp-server.ts', import.meta.url));
    const upstream = await startStdioPool(
      'emu',
      { type: 'stdio', command: process.execPath, args: ['--import', 'tsx', emulator], era: '2026-07-28' },
      opened,
    );
    const updated: string[] = [];
    upstream.onResourceUpdated((uri) => updated.push(uri));
    await upstream.request('resources/subscribe', { uri: 'emulator://watched' }, options());
    await upstream.callTool('touch_resource', {}, { ...options(), idempotent: false });
    await expect.poll(() => updated, { timeout: 10_000 }).toContain('emulator://watched');
  });
});

describe('a 2025-era stdio pool', () => {
  it('sends resources/subscribe to every process and delivers resources/updated', async () => {
    const upstream = await startPool('2025-11-25', { min: 2, max: 2 });
    const updated: string[] = [];
    upstream.onResourceUpdated((uri) => updated.push(uri));
    await upstream.request('resources/subscribe', { uri: 'test://watched-resource' }, options());
    await upstream.callTool('test_trigger_resource_update', {}, { ...options(), idempotent: false });
    await expect.poll(() => updated, { timeout: 10_000 }).toContain('test://watched-resource');
  });

  it('gives each of two concurrent calls on one process the answer of its own client', async () => {
    const upstream = await startPool('2025-11-25', { min: 1, max: 1 });
    const call = (who: string) =>
      upstream.callTool(
        'test_sampling',
        { prompt: `from ${who}` },
        {
          ...options(),
          idempotent: false,
          clientCapabilities: { sampling: {} },
          onServerRequest: async (request) => {
            const asked = JSON.stringify(request.params?.messages);
            return {
              role: 'assistant',
              content: { type: 'text', text: `${who} saw ${asked.includes(who)}` },
              model: 'm',
            };
          },
        },
      );
    const [alice, bob] = await Promise.all([call('alice'), call('bob')]);
    expect([textOf(alice), textOf(bob)]).toEqual([
      'LLM response: alice saw true',
      'LLM response: bob saw true',
    ]);
  });

  it('reports a server pinned to 2026-07-28 that speaks only 2025-11-25 as down, and refuses its calls', async () => {
    const upstream = stdioPool(
      'fx',
      stdioConfig('2026-07-28', { min: 1, max: 1, startTimeout: '5s' }, eraEnv('2025-11-25')),
      silent,
    );
    opened.push(upstream);
    await upstream.start();
    expect(upstream.stats()).toMatchObject({ ready: 0, down: { reason: expect.any(String) } });
    await expect(upstream.callTool('echo', {}, { ...options(), idempotent: false })).rejects.toMatchObject({
      code: 'GW_MCP_SERVER_DOWN',
      status: 503,
    });
  });

  it('refuses a server request that arrives while no interactive call runs', async () => {
    const upstream = await startPool('2025-11-25', { min: 1, max: 1 });
    // A plain call (no handler): the sampling request it triggers cannot be given to anyone.
    const result = await upstream
      .callTool('test_sampling', { prompt: 'hi' }, { ...options(), idempotent: false })
      .catch((error: unknown) => error);
    expect(JSON.stringify(result)).toMatch(/no client request of this connection can answer it/);
  });
});

describe('a 2025-era HTTP upstream', () => {
  it('lets a second interactive call proceed while the first waits on its user', async () => {
    const upstream = await startHttp('2025-11-25');
    let releaseFirst!: () => void;
    const firstMayAnswer = new Promise<void>((resolve) => (releaseFirst = resolve));
    const elicit = (who: string, before?: Promise<void>) =>
      upstream.callTool(
        'test_elicitation',
        { message: `hello ${who}` },
        {
          ...options(),
          idempotent: false,
          clientCapabilities: { elicitation: {} },
          onServerRequest: async () => {
            await before;
            return { action: 'accept', content: { username: who, email: `${who}@example.com` } };
          },
        },
      );
    // The first user answers only once the second one has: on one shared session this would never finish.
    const first = elicit('alice', firstMayAnswer);
    await expect.poll(() => upstream.stats().inFlight, { timeout: 10_000 }).toBe(1);
    const second = await elicit('bob');
    releaseFirst();
    expect(textOf(second)).toContain('"username":"bob"');
    expect(textOf(await first)).toContain('"username":"alice"');
    expect(upstream.stats().started).toBe(2);
  });
});
