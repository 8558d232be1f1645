import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { emulatorStats, spawnCli, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';
import { freePort, reachable } from '../helpers/services.js';

/** The example config from docs/deploy.md, exactly as shipped. */
const EXAMPLE = new URL('../../docs/nginx/slipstream.conf', import.meta.url);
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => existsSync(path));

if (NGINX === undefined) {
  const message =
    'nginx is not installed (apt-get install -y nginx-light): the docs/nginx example is untested';
  if (process.env.CI === 'true') throw new Error(message);
  process.stderr.write(`\n!!! SKIPPING: ${message}\n\n`);
}

const running: ChildProcess[] = [];
afterAll(async () => {
  await Promise.all(
    running
      .filter((child) => child.exitCode === null)
      .map((child) => {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        return exited;
      }),
  );
  await stopAll();
});

interface Nginx {
  readonly url: string;
  /** Rewrites the example with the replica at `index` marked `down` and reloads (what `nginx -s reload` does). */
  takeOut(index: number): Promise<void>;
}

/** Runs nginx in the foreground on the example, its two replicas replaced by `replicas`. */
async function startNginx(replicas: readonly string[]): Promise<Nginx> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'slipstream-nginx-'));
  chmodSync(dir, 0o755); // nginx's worker processes run as an unprivileged user
  const render = (down: number | undefined) => {
    const server = (i: number) => `server ${replicas[i]}${down === i ? ' down' : ''}`;
    const text = readFileSync(EXAMPLE, 'utf8')
      .replace('server 10.0.0.11:8080', server(0))
      .replace('server 10.0.0.12:8080', server(1))
      .replace('listen 80;', `listen 127.0.0.1:${port};`);
    expect(text).not.toMatch(/10\.0\.0\.|listen 80;/);
    return writeFile(join(dir, 'slipstream.conf'), text);
  };
  await render(undefined);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((kind) => `${kind}_temp_path ${join(dir, kind)};`)
    .join(' ');
  await writeFile(
    join(dir, 'nginx.conf'),
    `daemon off; worker_processes 1; pid ${join(dir, 'nginx.pid')}; error_log stderr warn;
events { worker_connections 1024; }
http { access_log off; ${temp} include ${join(dir, 'slipstream.conf')}; }
`,
  );
  const child = spawn(NGINX!, ['-p', dir, '-c', join(dir, 'nginx.conf')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.push(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100 && !(await reachable(url, 200)); i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    async takeOut(index) {
      await render(index);
      child.kill('SIGHUP');
    },
  };
}

/**
 * Sends requests through nginx, GET and POST in turn, from `clients` loops until `stop()`. Each request
 * opens its own connection to nginx: a reload closes nginx's idle client connections, a race between the
 * client and nginx that is not the hop under test (nginx to the replicas, kept alive).
 */
function traffic(url: string, clients: number) {
  const agent = new Agent({ connections: 16 });
  const outcomes: Array<{ method: string; status: number | string }> = [];
  let on = true;
  let next = 0;
  const send = async (i: number) => {
    const method = i % 2 === 1 ? 'POST' : 'GET';
    try {
      const response = await request(`${url}/work/${i}`, {
        dispatcher: agent,
        reset: true,
        method,
        ...(method === 'POST'
          ? { body: JSON.stringify({ i }), headers: { 'content-type': 'application/json' } }
          : {}),
      });
      await response.body.dump();
      outcomes.push({ method, status: response.statusCode });
    } catch (error) {
      outcomes.push({ method, status: (error as { code?: string }).code ?? 'error' });
    }
  };
  const loops = Array.from({ length: clients }, async () => {
    while (on) await send(next++);
  });
  return {
    outcomes,
    async stop() {
      on = false;
      await Promise.all(loops);
      await agent.close();
    },
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A replica: `serve` on its own emulator, so the emulators' counters tell the replicas apart. */
async function replica(): Promise<{ gateway: CliProcess; upstream: CliProcess; address: string }> {
  const upstream = await spawnCli(['emulate', 'http', '--latency', '20ms']);
  const dir = await mkdtemp(join(tmpdir(), 'slipstream-replica-'));
  const file = join(dir, 'slipstream.yaml');
  await writeFile(
    file,
    `server: { listen: "127.0.0.1:0", shutdownGrace: 5s }
admin: { listen: "127.0.0.1:0" }
upstreams:
  emu: { url: ${upstream.url} }
routes:
  - { name: emu, match: { prefix: / }, upstream: emu }
`,
  );
  const gateway = await spawnCli(['serve', '-c', file]);
  return { gateway, upstream, address: new URL(gateway.url).host };
}

describe.runIf(NGINX !== undefined)('the nginx example in docs/deploy.md', () => {
  it('spreads requests over both replicas, and a replica taken out before its SIGTERM loses no GET and no POST', async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const nginx = await startNginx([a.address, b.address]);
    const load = traffic(nginx.url, 8);
    await pause(500);
    const served = await Promise.all([a, b].map(async (r) => (await emulatorStats(r.upstream.url)).requests));
    expect(served[0]).toBeGreaterThan(0);
    expect(served[1]).toBeGreaterThan(0);

    // The rolling-restart procedure of docs/deploy.md: out of the upstream, reload, wait, then SIGTERM.
    await nginx.takeOut(0);
    let last = -1;
    await expect
      .poll(
        async () => {
          const now = (await emulatorStats(a.upstream.url)).requests;
          const settled = now === last;
          last = now;
          return settled;
        },
        { interval: 300, timeout: 10_000 },
      )
      .toBe(true);
    const before = load.outcomes.length;
    expect(await a.gateway.stop('SIGTERM')).toBe(0);
    await pause(500);
    await load.stop();
    expect(load.outcomes.length).toBeGreaterThan(before);
    expect(load.outcomes.filter((o) => o.status !== 200)).toEqual([]);
  }, 120_000);

  it('on a SIGTERM without warning, resends every GET that met the drain to the other replica', async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const nginx = await startNginx([a.address, b.address]);
    const load = traffic(nginx.url, 8);
    await pause(500);
    const before = load.outcomes.length;
    expect(await a.gateway.stop('SIGTERM')).toBe(0);
    await pause(500);
    await load.stop();
    expect(load.outcomes.length).toBeGreaterThan(before);
    expect(load.outcomes.filter((o) => o.method === 'GET' && o.status !== 200)).toEqual([]);
    // nginx never resends a POST that reached a replica (it may have run): a closing connection can fail one.
    const posts = load.outcomes.filter((o) => o.method === 'POST' && o.status !== 200);
    expect(posts.every((o) => o.status === 502 || o.status === 503)).toBe(true);
    expect((await emulatorStats(b.upstream.url)).requests).toBeGreaterThan(0);
  }, 120_000);
});
