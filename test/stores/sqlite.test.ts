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
          { sessionId: 's', messageId: 'm', role: 'user', content: 'x', complete: true, createdAt: 0 },
        ]),
      ).rejects.toThrow(/locked|busy/i);
      expect(performance.now() - started).toBeLessThan(1_000);
      other.exec('ROLLBACK');
      await store.write([
        { sessionId: 's', messageId: 'm', role: 'user', content: 'x', complete: true, createdAt: 0 },
      ]);
      expect(await store.history('s', 10)).toHaveLength(1);
    } finally {
      other.close();
      await store.close();
    }
  });
});
