import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import pg from 'pg';
import { request } from 'undici';
import { expectedContent, startLlmEmulator } from '../../emulators/llm.js';
import type { RunningLlmEmulator } from '../../emulators/llm.js';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { POSTGRES_URL, serviceAvailable } from '../helpers/services.js';
import { contentOf } from '../helpers/sse.js';

/** The caller every test writes as, and reads back as (sessions are read by their owner). */
const OWNER = { authorization: 'Bearer owner' };

async function stream(url: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const response = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...OWNER, ...headers },
    body: JSON.stringify({ model: 'm', stream: true, ...body }),
  });
  return { status: response.statusCode, text: await response.body.text() };
}

interface Message {
  role: string;
  content: string;
  complete: boolean;
}

async function history(url: string, session: string): Promise<Message[]> {
  const reply = await call(`${url}/v1/sessions/${encodeURIComponent(session)}`, { headers: OWNER });
  return (reply.body as { data: Message[] }).data;
}

/** Waits until the session's last message is a complete assistant reply, and returns the history. */
async function settled(url: string, session: string): Promise<Message[]> {
  let messages: Message[] = [];
  await expect
    .poll(
      async () => {
        messages = await history(url, session);
        const last = messages.at(-1);
        return last?.role === 'assistant' && last.complete;
      },
      { timeout: 10_000 },
    )
    .toBe(true);
  return messages;
}

const TEXT = 'Quote "this", a\nnew line, tab\t, back\\slash, ünïcödé and 🎉 emoji';

function transcriptSuite(
  name: string,
  storeYaml: () => string,
  /** Breaks the store; the returned function restores it and resolves with how many faults it caused. */
  breakStore: () => Promise<() => Promise<number>>,
  skip: () => boolean,
) {
  describe(`transcripts in ${name}`, () => {
    let emulator: RunningLlmEmulator;
    let gw: RunningGateway;

    beforeAll(async () => {
      if (skip()) return;
      emulator = await startLlmEmulator({ tokens: 40, gap: '2ms' });
      gw = await startGateway(`
# The caller's identity is the principal header, believed as is (these tests are about scoping, not auth).
auth: { trust: header }
upstreams: {}
llm:
  providers:
    emu: { baseUrl: "${emulator.url}/v1", models: { m: emu-small } }
  transcripts:
${storeYaml()}
    interval: 50ms
    minChars: 64
`);
    });

    afterAll(async () => {
      await gw?.close();
      await emulator?.close();
    });

    it('stores the new request messages and a reply identical to the relayed content', async ({
      skip: s,
    }) => {
      if (skip()) s();
      const session = `s-${name}-${Date.now()}`;
      const first = await stream(
        gw.url,
        {
          messages: [
            { role: 'system', content: 'be brief' },
            { role: 'user', content: 'hello "you"' },
          ],
        },
        { 'x-slipstream-session': session, 'x-emulate-text': encodeURIComponent(TEXT) },
      );
      expect(contentOf(first.text)).toBe(TEXT);
      const afterFirst = await settled(gw.url, session);
      expect(afterFirst.map((m) => [m.role, m.content])).toEqual([
        ['system', 'be brief'],
        ['user', 'hello "you"'],
        ['assistant', TEXT],
      ]);

      // The next turn resends the history: only the new user message is added.
      const second = await stream(gw.url, {
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: 'hello "you"' },
          { role: 'assistant', content: TEXT },
          { role: 'user', content: 'more' },
        ],
        metadata: { session_id: session },
      });
      const messages = await settled(gw.url, session);
      expect(messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant']);
      expect(messages.at(-1)!.content).toBe(contentOf(second.text));
      expect(messages.at(-1)!.content).toBe(expectedContent(40));
    });

    it('answers a malformed session id with 400 and keeps serving', async ({ skip: s }) => {
      if (skip()) s();
      const bad = await call(`${gw.url}/v1/sessions/%E0%A4%A`);
      expect([bad.status, bad.body.error.code]).toEqual([400, 'GW_BAD_REQUEST']);
      expect((await call(`${gw.url}/v1/sessions/fine`, { headers: OWNER })).status).toBe(200);
    });

    it("never shows one caller another caller's conversation, even with its id", async ({ skip: s }) => {
      if (skip()) s();
      const session = `private-${name}-${Date.now()}`;
      const alice = { authorization: 'Bearer alice' };
      await stream(
        gw.url,
        { messages: [{ role: 'user', content: 'my secret' }] },
        { ...alice, 'x-slipstream-session': session },
      );
      await expect
        .poll(
          async () => (await call(`${gw.url}/v1/sessions/${session}`, { headers: alice })).body.data.length,
          {
            timeout: 10_000,
          },
        )
        .toBe(2);
      const mallory = await call(`${gw.url}/v1/sessions/${session}`, {
        headers: { authorization: 'Bearer mallory' },
      });
      const anonymous = await call(`${gw.url}/v1/sessions/${session}`);
      expect([mallory.status, mallory.body.data]).toEqual([200, []]);
      expect([anonymous.status, anonymous.body.error.code]).toEqual([401, 'GW_UNAUTHORIZED']);
    });

    it('keeps the stream intact while the store is down, and catches up when it returns', async ({
      skip: s,
    }) => {
      if (skip()) s();
      const session = `down-${name}-${Date.now()}`;
      const restore = await breakStore();
      let faults = 0;
      let text: string;
      try {
        const response = await request(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...OWNER,
            'x-slipstream-session': session,
            'x-emulate-gap': '5ms',
          },
          body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'q' }] }),
        });
        text = await response.body.text();
        expect(response.statusCode).toBe(200);
      } finally {
        faults = await restore();
      }
      // The outage really happened (a fault injection that missed would prove nothing).
      expect(faults).toBeGreaterThan(0);
      expect(contentOf(text)).toBe(expectedContent(40));
      expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
      const messages = await settled(gw.url, session);
      expect(messages.at(-1)!.content).toBe(expectedContent(40));
      expect(gw.gateway.proxy.server.listening).toBe(true);
      if (name === 'sqlite') {
        // The lock was held for the whole stream: writes failed and were retried.
        const metrics = (await call(`${gw.adminUrl}/metrics`)).body as string;
        expect(metrics).toMatch(/^slipstream_transcript_store_errors_total [1-9]/m);
      }
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'slipstream-chat-'));
const sqlitePath = join(dir, 'transcripts.db');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

transcriptSuite(
  'sqlite',
  () => `    store: sqlite\n    sqlite: { path: "${sqlitePath}" }`,
  async () => {
    // Another connection holds the write lock: every write fails with SQLITE_BUSY until it lets go.
    const other = new Database(sqlitePath);
    other.exec('BEGIN IMMEDIATE');
    return async () => {
      const held = other.inTransaction; // the write lock was held until now
      other.exec('ROLLBACK');
      other.close();
      return held ? 1 : 0;
    };
  },
  () => false,
);

let pgAvailable = false;
const prefix = `chat_${process.pid}_${Date.now().toString(36)}_`;
beforeAll(async () => {
  pgAvailable = await serviceAvailable('PostgreSQL', POSTGRES_URL);
});
afterAll(async () => {
  if (!pgAvailable) return;
  const client = new pg.Client(POSTGRES_URL);
  await client.connect();
  await client.query(`DROP TABLE IF EXISTS ${prefix}messages`);
  await client.end();
});

transcriptSuite(
  'postgres',
  () => `    store: postgres\n    postgres: { url: "${POSTGRES_URL}", tablePrefix: ${prefix} }`,
  async () => {
    // Kill the gateway's backends mid-stream, twice: the pool must reconnect and the writer retry.
    const admin = new pg.Client(POSTGRES_URL);
    await admin.connect();
    let terminated = 0;
    const kill = async () => {
      const result = await admin.query<{ killed: boolean }>(
        `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
         WHERE pid <> pg_backend_pid() AND query LIKE '%${prefix}messages%'`,
      );
      terminated += result.rows.filter((row) => row.killed).length;
    };
    await kill();
    const timer = setInterval(() => void kill().catch(() => {}), 20);
    return async () => {
      clearInterval(timer);
      await admin.end();
      return terminated; // backends of the gateway's store that were killed mid-stream
    };
  },
  () => !pgAvailable,
);
