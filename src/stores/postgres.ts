// PostgreSQL transcript store (pg Pool): shared by many gateway instances; its table is created when missing.
import pg from 'pg';
import type { RetentionOptions, StoredMessage, TranscriptStore } from './transcript-store.js';

export interface PostgresStoreOptions {
  /** Connection string, e.g. `postgres://user@host:5432/db`. */
  url: string;
  /** The table is `{tablePrefix}messages`. Letters, digits and "_" only. Default `slipstream_`. */
  tablePrefix?: string;
  /** Pool size. Default 4. */
  connections?: number;
  /** Per-statement timeout in ms (a hung database fails the batch, which is retried). Default 5,000. */
  statementTimeoutMs?: number;
  /** Reported to PostgreSQL as `application_name`. Default `slipstream`. */
  applicationName?: string;
}

/**
 * Opens the store. `ready` (awaited by `write`, `history` and `cleanup`) creates the table and indexes
 * if missing. A batch is one `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE` statement:
 * one round trip and one implicit transaction however many rows it holds. Connections the server drops
 * (restart, `pg_terminate_backend`) are replaced on the next write.
 */
export function postgresStore(options: PostgresStoreOptions): TranscriptStore {
  const prefix = options.tablePrefix ?? 'slipstream_';
  if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(prefix)) throw new Error(`bad table prefix "${prefix}"`);
  const table = `${prefix}messages`;
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.connections ?? 4,
    statement_timeout: options.statementTimeoutMs ?? 5_000,
    connectionTimeoutMillis: options.statementTimeoutMs ?? 5_000,
    application_name: options.applicationName ?? 'slipstream',
  });
  // An idle client whose backend died emits here; without a listener that would crash the process.
  pool.on('error', () => {});

  let created: Promise<void> | undefined;
  const ready = () => {
    created ??= pool
      .query(
        `CREATE TABLE IF NOT EXISTS ${table} (
          id BIGSERIAL PRIMARY KEY,
          message_id TEXT NOT NULL UNIQUE,
          session_id TEXT NOT NULL,
          role TEXT NOT NULL,
          content TEXT NOT NULL,
          complete BOOLEAN NOT NULL,
          created_at BIGINT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS ${table}_session ON ${table} (session_id, id);
        CREATE INDEX IF NOT EXISTS ${table}_created ON ${table} (created_at);`,
      )
      .then(
        () => undefined,
        (error: unknown) => {
          created = undefined; // try again on the next call
          throw error;
        },
      );
    return created;
  };

  return {
    async write(rows) {
      if (rows.length === 0) return;
      await ready();
      await pool.query(
        `INSERT INTO ${table} AS t (message_id, session_id, role, content, complete, created_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::bigint[])
         ON CONFLICT (message_id) DO UPDATE
           SET content = t.content || excluded.content, complete = excluded.complete`,
        [
          rows.map((r) => r.messageId),
          rows.map((r) => withoutNul(r.sessionId)),
          rows.map((r) => withoutNul(r.role)),
          rows.map((r) => withoutNul(r.content)),
          rows.map((r) => r.complete),
          rows.map((r) => r.createdAt),
        ],
      );
    },
    async history(sessionId, limit) {
      await ready();
      const result = await pool.query<{
        id: string;
        role: string;
        content: string;
        complete: boolean;
        created_at: string;
      }>(
        `SELECT message_id AS id, role, content, complete, created_at FROM ${table}
         WHERE session_id = $1 ORDER BY ${table}.id LIMIT $2`,
        [withoutNul(sessionId), limit],
      );
      return result.rows.map((row): StoredMessage => ({
        id: row.id,
        role: row.role,
        content: row.content,
        complete: row.complete,
        createdAt: Number(row.created_at),
      }));
    },
    async cleanup(retention: RetentionOptions) {
      await ready();
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const old = await client.query(`DELETE FROM ${table} WHERE created_at < $1`, [
          Date.now() - retention.maxAgeMs,
        ]);
        const overflow = await client.query(
          `DELETE FROM ${table} WHERE id IN (
             SELECT id FROM (
               SELECT id, ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY id DESC) AS n FROM ${table}
             ) ranked WHERE n > $1)`,
          [retention.maxMessagesPerSession],
        );
        const sessions = await client.query(
          `DELETE FROM ${table} WHERE session_id IN (
             SELECT session_id FROM ${table} GROUP BY session_id ORDER BY MAX(id) DESC OFFSET $1)`,
          [retention.maxSessions],
        );
        await client.query('COMMIT');
        return (old.rowCount ?? 0) + (overflow.rowCount ?? 0) + (sessions.rowCount ?? 0);
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

/**
 * PostgreSQL rejects NUL in text values: one such character from a client would fail every batch it is in,
 * and the batch is retried, so it is dropped here (SQLite stores it as is).
 */
function withoutNul(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '') : text;
}
