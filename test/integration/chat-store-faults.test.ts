import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { request } from 'undici';
import { startLlmEmulator } from '../../emulators/llm.js';
import type { RunningLlmEmulator } from '../../emulators/llm.js';
import { call } from '../helpers/gateway.js';
import { startPgFaultProxy } from '../helpers/pg-fault-proxy.js';
import type { PgFaultProxy } from '../helpers/pg-fault-proxy.js';
import { spawnCli, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';
import { POSTGRES_URL, serviceAvailable } from '../helpers/services.js';
import { contentOf } from '../helpers/sse.js';

const GRACE_MS = 3_000;
const pgUp = await serviceAvailable('PostgreSQL', POSTGRES_URL);
const prefix = `faults_${process.pid}_${Date.now().toString(36)}_`;

interface Row {
  session_id: string;
  role: string;
  content: string;
  complete: boolean;
}

/** Reads the table straight from PostgreSQL (not through the proxy, nor through the gateway). */
async function storedRows(): Promise<Row[]> {
  const client = new pg.Client(POSTGRES_URL);
  await client.connect();
  try {
    const table = await client.query<{ exists: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS exists`, [
      `${prefix}messages`,
    ]);
    if (!table.rows[0]!.exists) return [];
    const result = await client.query<Row>(
      `SELECT session_id, role, content, complete FROM ${prefix}messages ORDER BY id`,
    );
    return result.rows;
  } finally {
    await client.end();
  }
}

function session(rows: readonly Row[], id: string): Array<[string, string, boolean]> {
  return rows.filter((r) => r.session_id === `anon:${id}`).map((r) => [r.role, r.content, r.complete]);
}

async function chat(url: string, sessionId: string): Promise<string> {
  const response = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-slipstream-session': sessionId,
      'x-emulate-tokens': '60',
      'x-emulate-gap': '3ms',
    },
    body: JSON.stringify({
      model: 'm',
      stream: true,
      messages: [{ role: 'user', content: `q ${sessionId}` }],
    }),
  });
  const text = await response.body.text();
  expect(response.statusCode).toBe(200);
  return contentOf(text);
}

async function metric(adminUrl: string, name: string): Promise<number> {
  const text = (await call(`${adminUrl}/metrics`)).body as string;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ').pop());
}

describe.skipIf(!pgUp)('transcripts in PostgreSQL behind a faulty network (real gateway process)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-pg-faults-'));
  let emulator: RunningLlmEmulator;
  let proxy: PgFaultProxy;
  let gateway: CliProcess;
  const logLines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    emulator = await startLlmEmulator();
    proxy = await startPgFaultProxy(POSTGRES_URL);
    const config = join(dir, 'slipstream.yaml');
    writeFileSync(
      config,
      `server: { listen: "127.0.0.1:0", shutdownGrace: ${GRACE_MS}ms }
admin: { listen: "127.0.0.1:0" }
telemetry: { log: { level: warn } }
upstreams: {}
llm:
  providers:
    emu: { baseUrl: "${emulator.url}/v1", models: { m: emu-small } }
  transcripts:
    store: postgres
    postgres: { url: "${proxy.url}", tablePrefix: ${prefix}, queryTimeout: 1s }
    interval: 30ms
    minChars: 40
`,
    );
    gateway = await spawnCli(['serve', '-c', config]);
    let partial = '';
    gateway.child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) if (line.startsWith('{')) logLines.push(JSON.parse(line));
    });
  });

  afterAll(async () => {
    await stopAll();
    await proxy?.close();
    await emulator?.close();
    rmSync(dir, { recursive: true, force: true });
    if (!pgUp) return;
    const client = new pg.Client(POSTGRES_URL);
    await client.connect();
    await client.query(`DROP TABLE IF EXISTS ${prefix}messages`);
    await client.end();
  });

  const received = new Map<string, string>();

  it('stores every reply exactly as its client received it although 5 commit acknowledgements were lost', async () => {
    proxy.cutAfterCommit(5);
    // Chats come in waves until five INSERTs have been cut: how many rows one INSERT carries depends on
    // the machine's speed (a slow machine batches a whole wave into one), so a fixed count of chats could
    // end before the fifth cut.
    const ids: string[] = [];
    for (let wave = 0; proxy.cuts < 5 && wave < 40; wave++) {
      const waveIds = Array.from({ length: 4 }, (_, i) => `cut-${wave}-${i}`);
      ids.push(...waveIds);
      await Promise.all(waveIds.map(async (id) => received.set(id, await chat(gateway.url, id))));
    }
    let rows: Row[] = [];
    await expect
      .poll(
        async () => {
          rows = await storedRows();
          return ids.every((id) => session(rows, id).at(-1)?.[2] === true);
        },
        { timeout: 20_000, interval: 200 },
      )
      .toBe(true);
    expect(proxy.cuts).toBe(5);
    for (const id of ids) {
      expect(received.get(id)!.length).toBeGreaterThan(100);
      expect(session(rows, id)).toEqual([
        ['user', `q ${id}`, true],
        ['assistant', received.get(id), true],
      ]);
    }
  });

  it('counts a hung connection as a store error, and on SIGTERM exits within the grace counting the unwritten rows', async () => {
    const adminUrl = String(gateway.listening.adminUrl);
    const errorsBefore = await metric(adminUrl, 'slipstream_transcript_store_errors_total');
    proxy.hang();
    const ids = Array.from({ length: 5 }, (_, i) => `hang-${i}`);
    // The relay does not wait for the store: every client gets its whole reply.
    await Promise.all(ids.map(async (id) => received.set(id, await chat(gateway.url, id))));
    for (const id of ids) expect(received.get(id)!.length).toBeGreaterThan(100);
    // A write stuck on the hung connection fails after the query timeout. Soft: the shutdown below is
    // checked whatever these say.
    let errors = errorsBefore;
    for (let i = 0; i < 100 && errors <= errorsBefore; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      errors = await metric(adminUrl, 'slipstream_transcript_store_errors_total');
    }
    expect.soft(errors).toBeGreaterThan(errorsBefore);
    expect.soft(await metric(adminUrl, 'slipstream_transcript_queue_depth')).toBeGreaterThan(0);

    const started = performance.now();
    const exited = gateway.stop('SIGTERM');
    const outcome = await Promise.race([
      exited.then((code) => ({ code })),
      new Promise<'still running'>((resolve) =>
        setTimeout(() => resolve('still running'), GRACE_MS + 10_000),
      ),
    ]);
    const elapsedMs = performance.now() - started;
    expect(outcome).toEqual({ code: 0 });
    expect(elapsedMs).toBeLessThan(GRACE_MS + 2_000);
    const unwritten = logLines.find((l) => l.msg === 'transcript rows not written by the shutdown deadline');
    expect(unwritten?.unwritten).toBeGreaterThan(0);

    // Whatever did reach the database is a prefix of what the clients got, never more.
    const rows = await storedRows();
    for (const id of ids) {
      const reply = session(rows, id).find(([role]) => role === 'assistant');
      if (reply !== undefined) expect(received.get(id)!.startsWith(reply[1])).toBe(true);
    }
  });
});
