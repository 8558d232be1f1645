// PostgreSQL transcript store (pg Pool): shared by many gateway instances; its table is created (or upgraded) when needed.
import { Socket } from 'node:net';
import type pg from 'pg';
import { optionalDependency } from '../optional-dependency.js';
import type { RetentionOptions, StoredMessage, TranscriptRow, TranscriptStore } from './transcript-store.js';

export interface PostgresStoreOptions {
  /** Connection string, e.g. `postgres://user@host:5432/db`. */
  url: string;
  /** The table is `{tablePrefix}messages`. Letters, digits and "_" only. Default `slipstream_`. */
  tablePrefix?: string;
  /** Pool size. Default 4. */
  connections?: number;
  /**
   * Longest wait for one statement, in ms: the server cancels it after this (`statement_timeout`), the
   * client gives up on its reply 250 ms later (`query_timeout`: a hung connection, no reply and no FIN,
   * fails the batch, which is retried on a fresh connection), and connecting or waiting for a pooled
   * connection is bounded by it too. Default 5,000.
   */
  queryTimeoutMs?: number;
  /** TCP keepalive probes start after this much idle time on a connection, in ms. Default 10,000. */
  keepAliveMs?: number;
  /** Reported to PostgreSQL as `application_name`. Default `slipstream`. */
  applicationName?: string;
}

const postgres = optionalDependency<typeof pg>('pg');

/** How much longer than the server's `statement_timeout` the client waits for a reply. */
const CLIENT_TIMEOUT_MARGIN_MS = 250;

/**
 * Opens the store. `ready` (awaited by `write`, `history` and `cleanup`) creates the table and indexes
 * if missing, and adds `last_seq` to a table an older version created. A batch is one
 * `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE ... WHERE last_seq < excluded.last_seq`
 * statement: one round trip and one implicit transaction however many rows it holds, and idempotent, so a
 * batch retried after a lost commit acknowledgement (or a late duplicate) is skipped. Connections the
 * server drops (restart, `pg_terminate_backend`) or that stop answering are replaced on the next write.
 */
export function postgresStore(options: PostgresStoreOptions): TranscriptStore {
  const prefix = options.tablePrefix ?? 'slipstream_';
  if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(prefix)) throw new Error(`bad table prefix "${prefix}"`);
  const table = `${prefix}messages`;
  const timeoutMs = options.queryTimeoutMs ?? 5_000;
  /** Every socket the pool opened and that is not closed yet, so `close` can cut what does not end. */
  const sockets = new Set<Socket>();
  const pool = new (postgres().Pool)({
    connectionString: options.url,
    max: options.connections ?? 4,
    statement_timeout: timeoutMs,
    query_timeout: timeoutMs + CLIENT_TIMEOUT_MARGIN_MS,
    connectionTimeoutMillis: timeoutMs,
    // Finds a peer that vanished under an idle connection (host gone, NAT entry dropped).
    keepAlive: true,
    keepAliveInitialDelayMillis: options.keepAliveMs ?? 10_000,
    application_name: options.applicationName ?? 'slipstream',
    stream: () => {
      const socket = new Socket();
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      // A connection ended gracefully (idle timeout, error) waits for the server's FIN: a hung peer never
      // sends it, so the half-closed socket is cut after the query timeout instead of lingering.
      socket.once('finish', () => setTimeout(() => socket.destroy(), timeoutMs).unref());
      return socket;
    },
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
          last_seq BIGINT NOT NULL DEFAULT 0,
          complete BOOLEAN NOT NULL,
          created_at BIGINT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS ${table}_session ON ${table} (session_id, id);
        CREATE INDEX IF NOT EXISTS ${table}_created ON ${table} (created_at);`,
      )
      .then(() => addSeqColumn(pool, table))
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
    async write(batch) {
      if (batch.length === 0) return;
      await ready();
      const rows = mergeRows(batch);
      // Rows at or below the message's last applied seq were written already: the WHERE skips them
      // (a concurrent duplicate waits for the row lock, then sees the committed seq).
      await pool.query(
        `INSERT INTO ${table} AS t (message_id, session_id, role, content, last_seq, complete, created_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::boolean[],
                              $7::bigint[])
         ON CONFLICT (message_id) DO UPDATE
           SET content = t.content || excluded.content, complete = excluded.complete,
               last_seq = excluded.last_seq
           WHERE t.last_seq < excluded.last_seq`,
        [
          rows.map((r) => r.messageId),
          rows.map((r) => withoutNul(r.sessionId)),
          rows.map((r) => withoutNul(r.role)),
          rows.map((r) => withoutNul(r.content)),
          rows.map((r) => r.seq),
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
      let failure: Error | undefined;
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
        failure = error instanceof Error ? error : new Error(String(error));
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        // A failed client (maybe stuck on a hung connection) is destroyed, not pooled again.
        client.release(failure);
      }
    },
    async close(closeTimeoutMs = 1_000) {
      // pool.end() resolves once no client is checked out, not when the sockets are closed: a connection
      // whose peer never answers our FIN, or a client stuck on a hung query, would keep the process alive.
      let timer: NodeJS.Timeout | undefined;
      const closed = pool
        .end()
        .catch(() => {})
        .then(() => Promise.all([...sockets].map((s) => new Promise((resolve) => s.once('close', resolve)))));
      await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, closeTimeoutMs)))]);
      clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
    },
  };
}

/**
 * Upgrades a table created before exactly-once writes: `last_seq` is added with 0 for the old rows
 * (their messages are finished; no new row names them). In PostgreSQL 11+ a constant default is a
 * catalogue change, not a rewrite; the column is looked up first so a normal start takes no
 * `ACCESS EXCLUSIVE` lock.
 */
async function addSeqColumn(pool: pg.Pool, table: string): Promise<void> {
  const found = await pool.query(
    `SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'last_seq' AND NOT attisdropped`,
    [table],
  );
  if (found.rowCount === 0)
    await pool.query(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS last_seq BIGINT NOT NULL DEFAULT 0`);
}

/**
 * PostgreSQL rejects NUL in text values: one such character from a client would fail every batch it is in,
 * and the batch is retried, so it is dropped here (SQLite stores it as is).
 */
function withoutNul(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '') : text;
}

/**
 * Folds rows of the same message within one batch into one row (contents joined in order, the last
 * `complete` and `seq` kept), at the position of its first row: one upsert per message per statement,
 * which PostgreSQL's `ON CONFLICT DO UPDATE` requires. The folded row is then applied or skipped as a
 * whole, which is exact because `TranscriptBuffer` retries a batch unchanged: a message's rows in two
 * different batches never overlap.
 */
function mergeRows(rows: readonly TranscriptRow[]): TranscriptRow[] {
  const byId = new Map<string, TranscriptRow>();
  for (const row of rows) {
    const seen = byId.get(row.messageId);
    if (seen === undefined) byId.set(row.messageId, { ...row });
    else {
      seen.content += row.content;
      seen.complete = row.complete;
      seen.seq = row.seq;
    }
  }
  return [...byId.values()];
}
