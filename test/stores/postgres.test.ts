import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { postgresStore } from '../../src/stores/postgres.js';
import type { TranscriptRow } from '../../src/stores/transcript-store.js';
import { startPgFaultProxy } from '../helpers/pg-fault-proxy.js';
import { POSTGRES_URL, serviceAvailable } from '../helpers/services.js';
import { storeContract } from './store-contract.js';

let available = false;
const prefixes: string[] = [];
const run = `t${process.pid}_${Date.now().toString(36)}`;
const nextPrefix = () => {
  const tablePrefix = `${run}_${prefixes.length}_`;
  prefixes.push(tablePrefix);
  return tablePrefix;
};

beforeAll(async () => {
  available = await serviceAvailable('PostgreSQL', POSTGRES_URL);
});

afterAll(async () => {
  if (!available) return;
  const client = new pg.Client(POSTGRES_URL);
  await client.connect();
  for (const prefix of prefixes) await client.query(`DROP TABLE IF EXISTS ${prefix}messages`);
  await client.end();
});

storeContract(
  'postgres',
  async () => postgresStore({ url: POSTGRES_URL, tablePrefix: nextPrefix() }),
  () => !available,
);

function row(messageId: string, content: string, seq = 0): TranscriptRow {
  return {
    sessionId: 's',
    messageId,
    role: 'assistant',
    content,
    seq,
    complete: false,
    createdAt: Date.now(),
  };
}

/** Settles with the outcome, or 'pending' if `promise` has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<{ value: T } | { error: unknown } | 'pending'> {
  return Promise.race([
    promise.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), ms)),
  ]);
}

describe('postgres transcript store on a faulty connection', () => {
  it('upgrades a table created before exactly-once writes and keeps its rows readable', async ({ skip }) => {
    if (!available) skip();
    const tablePrefix = nextPrefix();
    const admin = new pg.Client(POSTGRES_URL);
    await admin.connect();
    try {
      // The schema as the previous version created it: no last_seq.
      await admin.query(`CREATE TABLE ${tablePrefix}messages (
        id BIGSERIAL PRIMARY KEY, message_id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL,
        role TEXT NOT NULL, content TEXT NOT NULL, complete BOOLEAN NOT NULL, created_at BIGINT NOT NULL)`);
      await admin.query(
        `INSERT INTO ${tablePrefix}messages (message_id, session_id, role, content, complete, created_at)
         VALUES ('old', 's', 'assistant', 'from before', true, 1)`,
      );
    } finally {
      await admin.end();
    }
    const store = postgresStore({ url: POSTGRES_URL, tablePrefix });
    try {
      await store.write([row('new', 'tok0')]);
      await store.write([row('new', 'tok0')]);
      await store.write([row('new', ' tok1', 1)]);
      expect((await store.history('s', 10)).map((m) => [m.id, m.content])).toEqual([
        ['old', 'from before'],
        ['new', 'tok0 tok1'],
      ]);
    } finally {
      await store.close();
    }
  });

  it('fails a write stuck on a hung connection within the query timeout, and retries it on a fresh one', async ({
    skip,
  }) => {
    if (!available) skip();
    const proxy = await startPgFaultProxy(POSTGRES_URL);
    const store = postgresStore({ url: proxy.url, tablePrefix: nextPrefix(), queryTimeoutMs: 300 });
    try {
      await store.write([row('a', 'before')]);
      proxy.hang('open'); // the pooled connection stops answering; new ones still work
      const stuck = await within(store.write([row('b', 'during')]), 10_000);
      expect(stuck).toMatchObject({
        error: expect.objectContaining({ message: expect.stringMatching(/timeout/i) }),
      });
      await store.write([row('b', 'during')]);
      expect((await store.history('s', 10)).map((m) => m.content)).toEqual(['before', 'during']);
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  it('closes within its timeout while a connection hangs with a write on it (pool.end() alone never returns)', async ({
    skip,
  }) => {
    if (!available) skip();
    const proxy = await startPgFaultProxy(POSTGRES_URL);
    // A long query timeout: the write is still stuck when close() is called.
    const store = postgresStore({ url: proxy.url, tablePrefix: nextPrefix(), queryTimeoutMs: 60_000 });
    try {
      await store.write([row('a', 'before')]);
      proxy.hang();
      const stuck = store.write([row('b', 'during')]);
      stuck.catch(() => {});
      expect(await within(stuck, 200)).toBe('pending'); // on the wire, its client checked out
      expect(await within(store.close(200), 10_000)).toEqual({ value: undefined });
      // Its connection was cut, so the stuck write fails instead of holding the process.
      expect(await within(stuck, 10_000)).toMatchObject({ error: expect.anything() });
    } finally {
      await proxy.close();
    }
  });
});
