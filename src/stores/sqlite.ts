// SQLite transcript store (better-sqlite3, WAL): the embedded default, one file, prepared statements.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { optionalDependency } from '../optional-dependency.js';
import type { RetentionOptions, StoredMessage, TranscriptRow, TranscriptStore } from './transcript-store.js';

export interface SqliteStoreOptions {
  /** Database file (created with its directory when missing); `:memory:` for tests. */
  path: string;
  /**
   * How long a write waits for another process's lock, in ms. Default 5: better-sqlite3 waits on the event
   * loop, so a locked file fails fast and the transcript writer retries later instead.
   */
  busyTimeoutMs?: number;
}

const sqlite = optionalDependency<typeof Database>('better-sqlite3');

/**
 * Opens (and creates, or upgrades) the store: WAL journal, `synchronous=NORMAL` (a commit survives a
 * process crash; an OS crash may lose the last ones), one `messages` table indexed by session, each
 * message with the `seq` of the last row applied to it (rows at or below it are skipped, one by one).
 * Writes are synchronous (better-sqlite3): keep batches near 100 rows so one commit blocks the event
 * loop for well under 1 ms.
 */
export function sqliteStore(options: SqliteStoreOptions): TranscriptStore {
  if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
  const db = new (sqlite())(options.path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5))}`);
  db.exec(`
    CREATE TABLE IF NOT EXISTS messages (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      message_id TEXT NOT NULL UNIQUE,
      session_id TEXT NOT NULL,
      role TEXT NOT NULL,
      content TEXT NOT NULL,
      last_seq INTEGER NOT NULL DEFAULT 0,
      complete INTEGER NOT NULL,
      created_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS messages_session ON messages (session_id, id);
    CREATE INDEX IF NOT EXISTS messages_created ON messages (created_at);
  `);
  addSeqColumn(db);
  // Applied only when the row's seq is above the stored one: a batch written twice lands once.
  const upsert = db.prepare(`
    INSERT INTO messages (message_id, session_id, role, content, last_seq, complete, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (message_id) DO UPDATE
      SET content = messages.content || excluded.content, complete = excluded.complete,
          last_seq = excluded.last_seq
      WHERE excluded.last_seq > messages.last_seq`);
  const select = db.prepare(`
    SELECT message_id AS id, role, content, complete, created_at AS createdAt FROM messages
    WHERE session_id = ? ORDER BY messages.id LIMIT ?`);
  const deleteOld = db.prepare('DELETE FROM messages WHERE created_at < ?');
  const deleteOverflow = db.prepare(`
    DELETE FROM messages WHERE id IN (
      SELECT id FROM (
        SELECT id, ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY id DESC) AS n FROM messages
      ) WHERE n > ?)`);
  const deleteSessions = db.prepare(`
    DELETE FROM messages WHERE session_id IN (
      SELECT session_id FROM messages GROUP BY session_id ORDER BY MAX(id) DESC LIMIT -1 OFFSET ?)`);
  const writeAll = db.transaction((rows: readonly TranscriptRow[]) => {
    for (const r of rows) {
      upsert.run(r.messageId, r.sessionId, r.role, r.content, r.seq, r.complete ? 1 : 0, r.createdAt);
    }
  });
  const cleanupAll = db.transaction(
    (retention: RetentionOptions, now: number) =>
      deleteOld.run(now - retention.maxAgeMs).changes +
      deleteOverflow.run(retention.maxMessagesPerSession).changes +
      deleteSessions.run(retention.maxSessions).changes,
  );

  return {
    write: (rows) =>
      new Promise<void>((resolve) => {
        writeAll(rows);
        resolve();
      }),
    history: (sessionId, limit) =>
      new Promise<StoredMessage[]>((resolve) => {
        const rows = select.all(sessionId, limit) as Array<
          Omit<StoredMessage, 'complete'> & { complete: number }
        >;
        resolve(rows.map((row) => ({ ...row, complete: row.complete === 1 })));
      }),
    cleanup: (retention) => new Promise<number>((resolve) => resolve(cleanupAll(retention, Date.now()))),
    // Synchronous: nothing to wait for, so no timeout either.
    close: () =>
      new Promise<void>((resolve) => {
        if (db.open) db.close();
        resolve();
      }),
  };
}

/**
 * Tables created before exactly-once writes lack `last_seq`: it is added (old rows get 0; their messages
 * are finished, no new row will name them). In an immediate transaction, so two processes opening the
 * file at once do not both add it.
 */
function addSeqColumn(db: Database.Database): void {
  db.transaction(() => {
    const columns = db.pragma('table_info(messages)') as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'last_seq'))
      db.exec('ALTER TABLE messages ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0');
  }).immediate();
}
