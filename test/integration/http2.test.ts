import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import type { EmulatorStats } from '../../emulators/http-upstream.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { spawnCli, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';

/** A self-signed certificate for 127.0.0.1, made with the system's openssl for this run only. */
async function selfSigned(dir: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ]);
  return { cert, key };
}

/** The emulator's counters, read over a connection that trusts `cert` (and is itself counted). */
async function tlsStats(url: string, cert: string, path = 'stats'): Promise<EmulatorStats> {
  const dispatcher = new Agent({ connect: { ca: await readFile(cert, 'utf8') } });
  try {
    const response = await request(`${url}/__emulator/${path}`, {
      dispatcher,
      method: path === 'stats' ? 'GET' : 'POST',
    });
    return (await response.body.json()) as EmulatorStats;
  } finally {
    await dispatcher.close();
  }
}

describe('HTTPS and HTTP/2 upstreams', () => {
  let dir: string;
  let upstream: CliProcess;
  let gw: RunningGateway;
  let cert: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipstream-tls-'));
    const files = await selfSigned(dir);
    cert = files.cert;
    const key = files.key;
    upstream = await spawnCli(['emulate', 'http', '--latency', '20ms', '--tls-cert', cert, '--tls-key', key]);
    gw = await startGateway(`
upstreams:
  h2: { url: "${upstream.url}", pool: { http2: true, connections: 1 }, tls: { ca: "${cert}" } }
  h1: { url: "${upstream.url}", tls: { ca: "${cert}" } }
routes:
  - { name: h2, match: { prefix: /h2 }, upstream: h2 }
  - { name: h1, match: { prefix: /h1 }, upstream: h1 }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await stopAll();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => tlsStats(upstream.url, cert, 'reset'));

  it('multiplexes 50 concurrent calls over one HTTP/2 connection, verifying the upstream against the given CA', async () => {
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => call(`${gw.url}/h2/item/${i}`)));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    const stats = await tlsStats(upstream.url, cert);
    expect(stats.http2Requests).toBe(50);
    expect(stats.maxInFlight).toBeGreaterThan(1); // concurrent on the one connection, not queued
    // The gateway's one connection was opened at warm-up, before the reset; only the stats read is new.
    expect(stats.connections).toBe(1);
  });

  it('speaks HTTP/1.1 over TLS when http2 is off', async () => {
    const reply = await call(`${gw.url}/h1/item`);
    expect(reply.status).toBe(200);
    expect((await tlsStats(upstream.url, cert)).http2Requests).toBe(0);
  });
});

describe('HTTPS upstream whose certificate the gateway does not trust', () => {
  afterAll(stopAll);

  it('refuses it with 502 GW_UPSTREAM_UNAVAILABLE rather than sending anything', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'slipstream-tls-'));
    try {
      const { cert, key } = await selfSigned(dir);
      const upstream = await spawnCli(['emulate', 'http', '--tls-cert', cert, '--tls-key', key]);
      const gw = await startGateway(`
upstreams:
  untrusted: { url: "${upstream.url}", pool: { http2: true } }
routes:
  - { name: untrusted, match: { prefix: / }, upstream: untrusted, retry: { attempts: 1 } }
`);
      try {
        const reply = await call(`${gw.url}/x`);
        expect([reply.status, reply.body.error.code]).toEqual([502, 'GW_UPSTREAM_UNAVAILABLE']);
        expect((await tlsStats(upstream.url, cert)).requests).toBe(0);
      } finally {
        await gw.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
