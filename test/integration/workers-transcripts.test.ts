import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { expectedContent, startLlmEmulator } from '../../emulators/llm.js';
import { scopedSession } from '../../src/entrypoints/llm/endpoint.js';
import { stopAll } from '../helpers/processes.js';
import { contentOf } from '../helpers/sse.js';
import { scrape, series, seriesSum, startWorkers } from '../helpers/workers.js';

afterAll(() => stopAll());

const OWNER = 'Bearer owner';
const TOKENS = 30;

/** One streamed chat completion on a connection of its own, in session `session`. */
async function stream(url: string, session: string) {
  const response = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    reset: true,
    headers: { 'content-type': 'application/json', authorization: OWNER, 'x-slipstream-session': session },
    body: JSON.stringify({
      model: 'm',
      stream: true,
      messages: [{ role: 'user', content: `hi ${session}` }],
    }),
  });
  return {
    status: response.statusCode,
    worker: response.headers['x-slipstream-worker'],
    text: await response.body.text(),
  };
}

describe('transcripts from several workers into one SQLite file', () => {
  it('stores every streamed reply exactly once and complete while the workers contend for the write lock', async () => {
    const emulator = await startLlmEmulator({ tokens: TOKENS, gap: '5ms' });
    // A directory that does not exist yet: the supervisor creates the file, its WAL mode and schema once.
    const path = join(mkdtempSync(join(tmpdir(), 'slipstream-wal-')), 'data', 'transcripts.db');
    const gw = await startWorkers(`
# The caller's identity is the principal header, believed as is (this test is about storage, not auth).
auth: { trust: header }
upstreams: {}
llm:
  providers:
    emu: { baseUrl: "${emulator.url}/v1", models: { m: emu-small } }
  transcripts:
    store: sqlite
    sqlite: { path: "${path}" }
    interval: 50ms
    minChars: 16
`);
    const db = new Database(path);
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      // Another writer holds the lock while the streams flush: the workers' commits meet SQLITE_BUSY.
      db.exec('BEGIN IMMEDIATE');
      const release = new Promise<void>((resolve) =>
        setTimeout(() => {
          db.exec('COMMIT');
          resolve();
        }, 800),
      );
      const sessions = Array.from({ length: 40 }, (_, i) => `s${i}`);
      const replies = await Promise.all(sessions.map((s) => stream(gw.url, s)));
      await release;
      expect(replies.map((r) => r.status)).toEqual(Array(40).fill(200));
      expect(replies.every((r) => contentOf(r.text) === expectedContent(TOKENS))).toBe(true);
      expect(new Set(replies.map((r) => r.worker))).toEqual(new Set(['1', '2']));

      const stored = db.prepare(
        'SELECT role, content, complete FROM messages WHERE session_id = ? ORDER BY id',
      );
      const expected = (s: string) => [
        { role: 'user', content: `hi ${s}`, complete: 1 },
        { role: 'assistant', content: expectedContent(TOKENS), complete: 1 },
      ];
      await expect
        .poll(
          () =>
            sessions.every(
              (s) => JSON.stringify(stored.all(scopedSession(OWNER, s))) === JSON.stringify(expected(s)),
            ),
          {
            timeout: 20_000,
          },
        )
        .toBe(true);
      const failures = series(await scrape(gw.adminUrl), 'slipstream_transcript_store_errors_total');
      expect(failures).toBeGreaterThan(0); // the lock was met, and every batch was retried to the end
      expect(seriesSum(await scrape(gw.adminUrl), 'slipstream_transcript_dropped_rows_total')).toBe(0);
      expect(await gw.process.stop('SIGTERM')).toBe(0);
      expect(db.prepare('SELECT COUNT(*) AS n FROM messages').get()).toEqual({ n: 80 });
    } finally {
      if (db.inTransaction) db.exec('ROLLBACK');
      db.close();
      await emulator.close();
    }
  }, 120_000);
});
