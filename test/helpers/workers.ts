// Drives `serve --workers N` in integration tests: start it, ask which worker served, read its merged metrics.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import type { CliProcess } from './processes.js';
import { spawnCli } from './processes.js';

export interface Supervised {
  readonly process: CliProcess;
  readonly url: string;
  readonly adminUrl: string;
  readonly file: string;
}

/** Writes `yaml` (listeners on loopback port 0 unless it sets them) and runs `serve --workers N` on it. */
export async function startWorkers(
  yaml: string,
  workers = 2,
  options: { node?: string } = {},
): Promise<Supervised> {
  const dir = await mkdtemp(join(tmpdir(), 'slipstream-workers-'));
  const file = join(dir, 'slipstream.yaml');
  const server = /^server:/m.test(yaml) ? '' : 'server: { listen: "127.0.0.1:0", workerHeader: true }\n';
  const admin = /^admin:/m.test(yaml) ? '' : 'admin: { listen: "127.0.0.1:0" }\n';
  await writeFile(file, server + admin + yaml);
  const child = await spawnCli(['serve', '-c', file, '--workers', String(workers)], {
    startTimeoutMs: 90_000,
    ...(options.node === undefined ? {} : { node: options.node }),
  }).catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  // The config's folder goes with the supervisor (a test may still read `file` until it stops it).
  child.child.once('exit', () => void rm(dir, { recursive: true, force: true }));
  return { process: child, url: child.url, adminUrl: String(child.listening.adminUrl), file };
}

/**
 * One GET on a connection of its own (workers are handed connections, not requests), closed after the
 * reply unless `keepAlive` (then the server decides whether it stays open).
 */
export async function fresh(
  url: string,
  headers: Record<string, string> = {},
  keepAlive = false,
): Promise<{ status: number; worker: string | undefined; headers: Record<string, unknown>; body: string }> {
  const response = await request(url, { headers, reset: !keepAlive, dispatcher: new Agent() });
  const body = await response.body.text();
  const worker = response.headers['x-slipstream-worker'];
  return {
    status: response.statusCode,
    worker: typeof worker === 'string' ? worker : undefined,
    headers: response.headers,
    body,
  };
}

export interface WorkerStatus {
  worker: string;
  pid: number | null;
  state: string;
  restarts: number;
}

/** `GET /admin/workers`. */
export async function workersOf(adminUrl: string): Promise<{ balancing: string; workers: WorkerStatus[] }> {
  const response = await request(`${adminUrl}/admin/workers`);
  return (await response.body.json()) as { balancing: string; workers: WorkerStatus[] };
}

/** One scrape of the admin listener's `/metrics`. */
export async function scrape(adminUrl: string): Promise<string> {
  return (await request(`${adminUrl}/metrics`)).body.text();
}

/** The value of one series (`name{labels}` exactly as exposed), or undefined when absent. */
export function series(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/** The sum of every labelled series of `name` (0 when none was ever written). */
export function seriesSum(text: string, name: string): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** Sockets in LISTEN state on a local TCP port, from /proc/net/tcp{,6} (one per bound socket). */
export function listeningSockets(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[1]?.endsWith(`:${hexPort}`) && fields[3] === '0A') count++;
    }
  }
  return count;
}
