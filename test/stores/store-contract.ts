// The behaviour every transcript store shares, run against SQLite and PostgreSQL.
import { describe, expect, it } from 'vitest';
import type { TranscriptRow, TranscriptStore } from '../../src/stores/transcript-store.js';

function row(
  sessionId: string,
  messageId: string,
  content: string,
  extra: Partial<TranscriptRow> = {},
): TranscriptRow {
  return {
    sessionId,
    messageId,
    role: 'assistant',
    content,
    seq: 0,
    complete: false,
    createdAt: Date.now(),
    ...extra,
  };
}

/** `make()` returns a fresh, empty store; `skip()` is read when the tests run. */
export function storeContract(name: string, make: () => Promise<TranscriptStore>, skip: () => boolean): void {
  describe(`${name} transcript store`, () => {
    it('inserts new messages and appends to existing ones, keeping conversation order', async ({
      skip: skipTest,
    }) => {
      if (skip()) skipTest();
      const store = await make();
      try {
        await store.write([
          row('s', 'u1', 'question', { role: 'user', complete: true }),
          row('s', 'a1', 'tok0'),
        ]);
        await store.write([row('s', 'a1', ' tok1 "é"\n', { seq: 1 })]);
        await store.write([row('s', 'a1', ' tok2', { seq: 2, complete: true }), row('other', 'x', 'y')]);
        const history = await store.history('s', 100);
        expect(history.map((m) => [m.id, m.role, m.content, m.complete])).toEqual([
          ['u1', 'user', 'question', true],
          ['a1', 'assistant', 'tok0 tok1 "é"\n tok2', true],
        ]);
      } finally {
        await store.close();
      }
    });

    it('applies a batch once when it is written again (a retry after a lost commit acknowledgement)', async ({
      skip: skipTest,
    }) => {
      if (skip()) skipTest();
      const store = await make();
      try {
        const first = [row('s', 'u1', 'question', { role: 'user', complete: true }), row('s', 'a1', 'tok0')];
        await store.write(first);
        await store.write(first);
        const second = [row('s', 'a1', ' tok1', { seq: 1 }), row('s', 'a1', ' tok2', { seq: 2 })];
        await store.write(second);
        await store.write(second);
        // A late duplicate of an older delta, after newer ones were applied, changes nothing either.
        await store.write([row('s', 'a1', ' tok1', { seq: 1 })]);
        await store.write([row('s', 'a1', ' tok3', { seq: 3, complete: true })]);
        await store.write([row('s', 'a1', ' tok3', { seq: 3, complete: true })]);
        expect((await store.history('s', 10)).map((m) => [m.id, m.content, m.complete])).toEqual([
          ['u1', 'question', true],
          ['a1', 'tok0 tok1 tok2 tok3', true],
        ]);
      } finally {
        await store.close();
      }
    });

    it('appends a delta that follows a gap (rows dropped from a full queue) instead of skipping it', async ({
      skip: skipTest,
    }) => {
      if (skip()) skipTest();
      const store = await make();
      try {
        await store.write([row('s', 'a1', 'tok0')]);
        await store.write([row('s', 'a1', ' tok5', { seq: 5, complete: true })]);
        expect((await store.history('s', 10)).map((m) => [m.content, m.complete])).toEqual([
          ['tok0 tok5', true],
        ]);
      } finally {
        await store.close();
      }
    });

    it('accepts a NUL character from a client without failing the batch', async ({ skip: skipTest }) => {
      if (skip()) skipTest();
      const store = await make();
      try {
        await store.write([row('s\u0000nul', 'm-nul', 'a\u0000b'), row('s-ok', 'm-ok', 'fine')]);
        expect((await store.history('s-ok', 10)).map((m) => m.content)).toEqual(['fine']);
        const [stored] = await store.history('s\u0000nul', 10);
        expect(stored?.content.replace('\u0000', '')).toBe('ab');
      } finally {
        await store.close();
      }
    });

    it('writes a batch all or nothing', async ({ skip: skipTest }) => {
      if (skip()) skipTest();
      const store = await make();
      try {
        // A row with a null role violates NOT NULL: the whole batch must fail.
        const bad = row('s', 'b', 'x', { role: null as unknown as string });
        await expect(store.write([row('s', 'a', 'kept?'), bad])).rejects.toThrow();
        expect(await store.history('s', 10)).toEqual([]);
      } finally {
        await store.close();
      }
    });

    it('applies retention: age, messages per session and number of sessions', async ({ skip: skipTest }) => {
      if (skip()) skipTest();
      const store = await make();
      try {
        const old = Date.now() - 10_000;
        await store.write([row('a', 'a0', 'old', { createdAt: old })]);
        await store.write([1, 2, 3, 4].map((i) => row('a', `a${i}`, `m${i}`)));
        await store.write([row('b', 'b1', 'b'), row('c', 'c1', 'c')]);
        const deleted = await store.cleanup({ maxAgeMs: 5_000, maxMessagesPerSession: 2, maxSessions: 2 });
        // a0 by age; a1, a2 beyond 2 per session; a3, a4 because "a" is the least recent of 3 sessions.
        expect(deleted).toBe(5);
        expect(await store.history('a', 10)).toEqual([]);
        expect((await store.history('b', 10)).map((m) => m.content)).toEqual(['b']);
        expect((await store.history('c', 10)).map((m) => m.content)).toEqual(['c']);
      } finally {
        await store.close();
      }
    });
  });
}
