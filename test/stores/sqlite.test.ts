import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { sqliteStore } from '../../src/stores/sqlite.js';
import { storeContract } from './store-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-sqlite-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

storeContract(
  'sqlite',
  async () => sqliteStore({ path: join(dir, `t${++n}.db`) }),
  () => false,
);

describe('sqlite store', () => {
  it('uses WAL and fails fast (instead of blocking) while another connection holds the write lock', async () => {
    const path = join(dir, 'locked.db');
    const store = sqliteStore({ path });
    const other = new Database(path);
    try {
      expect(other.pragma('journal_mode', { simple: true })).toBe('wal');
      other.exec('BEGIN IMMEDIATE');
      const started = performance.now();
      await expect(
        store.write([
          {
            sessionId: 's',
            messageId: 'm',
            role: 'user',
            content: 'x',
            seq: 0,
            complete: true,
            createdAt: 0,
          },
        ]),
      ).rejects.toThrow(/locked|busy/i);
      expect(performance.now() - started).toBeLessThan(1_000);
      other.exec('ROLLBACK');
      await store.write([
        { sessionId: 's', messageId: 'm', role: 'user', content: 'x', seq: 0, complete: true, createdAt: 0 },
      ]);
      expect(await store.history('s', 10)).toHaveLength(1);
    } finally {
      other.close();
      await store.close();
    }
  });

  it('upgrades a file created before exactly-once writes and keeps its rows readable', async () => {
    const path = join(dir, 'old.db');
    const old = new Database(path);
    // The schema as the previous version created it: no last_seq.
    old.exec(`CREATE TABLE messages (
      id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL,
      role TEXT NOT NULL, content TEXT NOT NULL, complete INTEGER NOT NULL, created_at INTEGER NOT NULL);
      INSERT INTO messages (message_id, session_id, role, content, complete, created_at)
      VALUES ('old', 's', 'assistant', 'from before', 1, 1);`);
    old.close();
    const store = sqliteStore({ path });
    try {
      const next = { sessionId: 's', messageId: 'new', role: 'assistant', complete: false, createdAt: 2 };
      await store.write([{ ...next, content: 'tok0', seq: 0 }]);
      await store.write([{ ...next, content: 'tok0', seq: 0 }]);
      await store.write([{ ...next, content: ' tok1', seq: 1 }]);
      expect((await store.history('s', 10)).map((m) => [m.id, m.content])).toEqual([
        ['old', 'from before'],
        ['new', 'tok0 tok1'],
      ]);
    } finally {
      await store.close();
    }
  });
});
