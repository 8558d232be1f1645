// Hostile input gets a precise 4xx and touches nothing upstream: targets, paths, JSON, headers, uploads, sockets.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpEmulator } from '../../emulators/http-upstream.js';
import type { RunningEmulator } from '../../emulators/http-upstream.js';
import { startLlmEmulator } from '../../emulators/llm.js';
import type { RunningLlmEmulator } from '../../emulators/llm.js';
import type { ConfigError } from '../../src/config/load.js';
import { parseConfig } from '../../src/config/load.js';
import { call, emulatorServer, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';

/** Sends raw bytes on a fresh connection and resolves with what came back once the server closed it. */
function raw(url: string, bytes: string, localAddress?: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(
      {
        port: Number(new URL(url).port),
        host: '127.0.0.1',
        ...(localAddress === undefined ? {} : { localAddress }),
      },
      () => socket.write(bytes),
    );
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('close', () => resolve(text));
    socket.on('error', () => {});
  });
}

const status = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
const code = (text: string) => /"code":"(GW_[A-Z_]+)"/.exec(text)?.[1];

function deep(levels: number): string {
  return `{"a":${'['.repeat(levels)}1${']'.repeat(levels)}}`;
}

describe('hostile input', () => {
  let upstream: RunningEmulator;
  let llm: RunningLlmEmulator;
  let gw: RunningGateway;

  beforeAll(async () => {
    [upstream, llm] = await Promise.all([startHttpEmulator(), startLlmEmulator({ tokens: 2 })]);
    gw = await startGateway(`
upstreams:
  emu: { url: "${upstream.url}" }
routes:
  - { name: api, match: { prefix: /api }, upstream: emu, rewrite: /v1 }
  - { name: uploads, match: { prefix: /uploads }, upstream: emu, breaker: { threshold: 1, halfOpenAfter: 60s } }
  - { name: root, match: { prefix: / }, upstream: emu }
mcp:
  servers:
    emu: ${emulatorServer()}
llm:
  providers:
    emu: { baseUrl: "${llm.url}/v1", models: { fast: emu-small } }
groups:
  tools: { members: [{ name: echo, server: emu, tool: echo }], breaker: { threshold: 1, halfOpenAfter: 60s } }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all([upstream?.close(), llm?.close()]);
  });

  it('refuses an absolute-form target with 400 before any upstream sees it (no SSRF through a catch-all route)', async () => {
    upstream.reset();
    const text = await raw(
      gw.url,
      'GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\nhost: 169.254.169.254\r\n\r\n',
    );
    expect([status(text), code(text)]).toEqual([400, 'GW_BAD_REQUEST']);
    expect(upstream.stats().requests).toBe(0);
  });

  it('removes dot-segments before routing, so a path cannot escape its route or its rewrite prefix', async () => {
    const escaped = await call(`${gw.url}/api/%2e%2e/admin`);
    // Not the api route with "/v1/../admin" upstream: the root route with "/admin".
    expect(escaped.body.path).toBe('/admin');
    const inside = await call(`${gw.url}/api/x/../users`);
    expect(inside.body.path).toBe('/v1/users');
  });

  it.each(['/api/..%2fadmin', '/api/..;/admin', '/../etc/passwd', '/api/%5c..%5cadmin'])(
    'refuses the ambiguous path %s with 400',
    async (path) => {
      const text = await raw(gw.url, `GET ${path} HTTP/1.1\r\nhost: a\r\n\r\n`);
      expect([status(text), code(text)]).toEqual([400, 'GW_BAD_REQUEST']);
    },
  );

  it('refuses JSON nested deeper than the limit with 400 on /tools, chat and /mcp, before anything recurses', async () => {
    const body = deep(5_000);
    const tools = await call(`${gw.url}/tools/emu/echo`, { method: 'POST', body });
    expect([tools.status, tools.body.error.code]).toEqual([400, 'GW_BAD_REQUEST']);
    expect(tools.body.error.message).toContain('deeper than 64');
    const chat = await call(`${gw.url}/v1/chat/completions`, { method: 'POST', body });
    expect([chat.status, chat.body.error.code]).toEqual([400, 'GW_BAD_REQUEST']);
    const mcp = await call(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
      body,
    });
    expect([mcp.status, mcp.body.error.code]).toEqual([400, 'GW_BAD_REQUEST']);
  });

  it("refuses a deep message to a fan-out with a tool member without touching the member's breaker", async () => {
    const refused = await call(`${gw.url}/fanout/tools`, { method: 'POST', body: deep(5_000) });
    expect([refused.status, refused.body.error.code]).toEqual([400, 'GW_BAD_REQUEST']);
    const answered = await call(`${gw.url}/fanout/tools`, { method: 'POST', body: '{"text":"hi"}' });
    expect(answered.body.summary).toMatchObject({ answered: 1, skipped: 0 });
  });

  it('refuses JSON that is not valid UTF-8 with 400 instead of replacing it', async () => {
    const body = Buffer.concat([Buffer.from('{"text":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    const response = await call(`${gw.url}/tools/emu/echo`, { method: 'POST', body });
    expect([response.status, response.body.error.code]).toEqual([400, 'GW_BAD_REQUEST']);
    expect(response.body.error.message).toContain('UTF-8');
  });

  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty'])(
    'answers the model name %s with 404 GW_LLM_NO_PROVIDER, never 500',
    async (model) => {
      const response = await call(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        body: JSON.stringify({ model, messages: [] }),
      });
      expect([response.status, response.body.error.code]).toEqual([404, 'GW_LLM_NO_PROVIDER']);
    },
  );

  it.each(['constructor', '__proto__'])(
    'answers the tool name %s with 404 GW_TOOL_NOT_FOUND',
    async (tool) => {
      const response = await call(`${gw.url}/tools/emu/${tool}`, { method: 'POST', body: '{}' });
      expect([response.status, response.body.error.code]).toEqual([404, 'GW_TOOL_NOT_FOUND']);
    },
  );

  it('refuses a request with two Host headers with 400', async () => {
    upstream.reset();
    const text = await raw(gw.url, 'GET /x HTTP/1.1\r\nhost: a.example\r\nhost: b.example\r\n\r\n');
    expect([status(text), code(text)]).toEqual([400, 'GW_BAD_REQUEST']);
    expect(upstream.stats().requests).toBe(0);
  });

  it('answers Expect: 100-continue itself and proxies the upload, with the breaker still closed', async () => {
    upstream.reset();
    for (let i = 0; i < 3; i++) {
      const answer = await new Promise<string>((resolve) => {
        const socket = connect(Number(new URL(gw.url).port), '127.0.0.1', () =>
          socket.write(
            'POST /uploads/file HTTP/1.1\r\nhost: a\r\ncontent-type: application/octet-stream\r\n' +
              'content-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n',
          ),
        );
        let text = '';
        socket.on('data', (chunk: Buffer) => {
          text += chunk.toString();
          if (text.startsWith('HTTP/1.1 100 Continue\r\n\r\n') && !text.includes('hello')) {
            socket.write('hello');
            text += 'hello';
          }
        });
        socket.on('close', () => resolve(text));
      });
      expect(answer).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nhello[\s\S]*HTTP\/1\.1 200 /);
    }
    expect(upstream.stats().requests).toBe(3);
    const metrics = (await call(`${gw.adminUrl}/metrics`)).body as string;
    expect(metrics).not.toMatch(/slipstream_breaker_state\{name="uploads"\} 1/);
  });

  it("overwrites a client's X-Forwarded-* and Forwarded headers with what the gateway saw", async () => {
    const response = await call(`${gw.url}/api/h?echo=headers`, {
      headers: {
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-proto': 'https',
        forwarded: 'for=6.6.6.6',
      },
    });
    const seen = response.body.headers;
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-host']).toBe(new URL(gw.url).host);
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen.forwarded).toBeUndefined();
  });

  it('keeps the forwarding headers of a trusted proxy, extending the chain', async () => {
    const trusting = await startGateway(`
server: { listen: "127.0.0.1:0", trustedProxies: ["127.0.0.0/8"] }
upstreams:
  emu: { url: "${upstream.url}" }
routes:
  - { match: { prefix: / }, upstream: emu }
`);
    try {
      const response = await call(`${trusting.url}/h?echo=headers`, {
        headers: {
          'x-forwarded-for': '203.0.113.9',
          'x-forwarded-proto': 'https',
          'x-forwarded-host': 'app.example',
        },
      });
      expect(response.body.headers).toMatchObject({
        'x-forwarded-for': '203.0.113.9, 127.0.0.1',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'app.example',
      });
    } finally {
      await trusting.close();
    }
  });
});

describe('secure defaults in the config', () => {
  const base = 'upstreams:\n  a: { url: "http://127.0.0.1:1" }\n';
  const problems = (yaml: string) => {
    try {
      parseConfig(base + yaml, 'slipstream.yaml', {});
      return [];
    } catch (error) {
      return (error as ConfigError).problems.map((p) => p.message);
    }
  };

  it('treats an admin host that only starts like a loopback address as beyond loopback', () => {
    expect(problems('admin: { listen: "127.evil.example:9090" }\n')).toEqual([
      'the admin listener is bound beyond loopback; set admin.token or bind it to 127.0.0.1',
    ]);
    expect(problems('admin: { listen: "127.0.0.2:9090" }\n')).toEqual([]);
    expect(problems('admin: { listen: "[::1]:9090" }\n')).toEqual([]);
  });

  it('binds the data plane to loopback unless told otherwise', () => {
    expect(parseConfig(base, 'slipstream.yaml', {}).server.listen.host).toBe('127.0.0.1');
  });
});

describe('connection limits', () => {
  let upstream: RunningEmulator;
  let gw: RunningGateway;
  beforeAll(async () => {
    upstream = await startHttpEmulator();
    gw = await startGateway(`
server: { listen: "127.0.0.1:0", limits: { maxConnectionsPerIp: 100, headersTimeout: 2s } }
upstreams:
  emu: { url: "${upstream.url}" }
routes:
  - { match: { prefix: / }, upstream: emu }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  /** A child process holding `count` idle connections (one byte sent, then silence) until it is killed. */
  function flood(count: number) {
    const port = new URL(gw.url).port;
    const script = `
      const net = require('node:net');
      let open = 0, closed = 0;
      for (let i = 0; i < ${count}; i++) {
        const s = net.connect(${port}, '127.0.0.1', () => { open++; s.write('G'); });
        s.on('error', () => {}); s.on('close', () => closed++);
      }
      setInterval(() => process.stdout.write(JSON.stringify({ open, closed }) + '\\n'), 200);
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let last = { open: 0, closed: 0 };
    child.stdout.on('data', (chunk: Buffer) => {
      const line = chunk.toString().trim().split('\n').at(-1);
      if (line !== undefined && line !== '') last = JSON.parse(line) as typeof last;
    });
    return { child, progress: () => last };
  }

  it('keeps answering another client while one address holds 20,000 idle sockets (bounded per address)', async () => {
    // Two processes (each one's descriptor limit is 20,000 on this machine), one source address.
    const floods = [flood(10_000), flood(10_000)];
    try {
      await expect
        .poll(() => floods.reduce((n, f) => n + f.progress().open + f.progress().closed, 0), {
          timeout: 30_000,
        })
        .toBeGreaterThanOrEqual(19_000);
      // At most 100 of them are kept; the rest were closed as they arrived.
      await expect
        .poll(() => floods.reduce((n, f) => n + f.progress().closed, 0), { timeout: 30_000 })
        .toBeGreaterThanOrEqual(19_000);
      // Another address still gets answers, at once.
      const text = await raw(gw.url, 'GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n', '127.0.0.2');
      expect(status(text)).toBe(200);
    } finally {
      for (const f of floods) f.child.kill('SIGKILL');
      // The flood's connections are gone once this address is served again.
      await expect
        .poll(
          async () => status(await raw(gw.url, 'GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n')),
          {
            timeout: 30_000,
          },
        )
        .toBe(200);
    }
  }, 90_000);

  it('cuts a client that never finishes its request head after headersTimeout (408)', async () => {
    const text = await raw(gw.url, 'GET /x HTTP/1.1\r\nhost: a\r\n');
    expect([status(text), code(text)]).toEqual([408, 'GW_REQUEST_TIMEOUT']);
  });
});
