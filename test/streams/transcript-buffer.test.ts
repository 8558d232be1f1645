import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { llmMetrics } from '../../src/telemetry/metrics/llm.js';
import { TranscriptBuffer } from '../../src/streams/transcript-buffer.js';
import type { StoredMessage, TranscriptRow, TranscriptStore } from '../../src/stores/transcript-store.js';
import { sqliteStore } from '../../src/stores/sqlite.js';

/** Real time passing, to pace appends across flush intervals (not to wait for a result: those poll). */
const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A store that records every transaction and can be made to fail. */
function recordingStore() {
  const transactions: TranscriptRow[][] = [];
  const state = { failing: false };
  const store: TranscriptStore = {
    write: async (rows) => {
      if (state.failing) throw new Error('store down');
      transactions.push(rows.map((r) => ({ ...r })));
    },
    history: async () => [],
    cleanup: async () => 0,
    close: async () => {},
  };
  return { store, transactions, state };
}

const buffers: TranscriptBuffer[] = [];
afterEach(async () => {
  await Promise.all(buffers.splice(0).map((b) => b.close(500)));
});

function make(options: ConstructorParameters<typeof TranscriptBuffer>[0]) {
  const buffer = new TranscriptBuffer(options);
  buffers.push(buffer);
  return buffer;
}

describe('transcript buffer', () => {
  it('writes request messages, then the reply joined from its parts, in few transactions', async () => {
    const { store, transactions } = recordingStore();
    const buffer = make({ store, intervalMs: 30 });
    const t = buffer.start('s1', [{ role: 'user', content: 'hi' }]);
    for (let i = 0; i < 500; i++) t.append(`p${i} `);
    t.end(true);
    await expect.poll(() => transactions.flat().some((r) => r.role === 'assistant' && r.complete)).toBe(true);
    const rows = transactions.flat();
    expect(rows.map((r) => r.role)).toEqual(['user', 'assistant']);
    const reply = rows.filter((r) => r.role === 'assistant');
    expect(reply.map((r) => r.content).join('')).toBe(
      Array.from({ length: 500 }, (_, i) => `p${i} `).join(''),
    );
    expect(reply.at(-1)!.complete).toBe(true);
    expect(transactions.length).toBeLessThanOrEqual(2);
  });

  it('flushes a reply early once it buffered minChars', async () => {
    const { store, transactions } = recordingStore();
    const buffer = make({ store, intervalMs: 60_000, minChars: 10 });
    const t = buffer.start('s1', []);
    t.append('0123456789ab');
    await expect
      .poll(() => transactions.flat().map((r) => [r.content, r.complete]))
      .toEqual([['0123456789ab', false]]);
    t.end(true);
  });

  it('stores only the final message when persistDeltas is false', async () => {
    const { store, transactions } = recordingStore();
    const buffer = make({ store, intervalMs: 10, minChars: 1, persistDeltas: false });
    const t = buffer.start('s1', []);
    t.append('a');
    // Another session's request message is written by the next flush, which also saw s1's buffered 'a'.
    buffer.start('s2', [{ role: 'user', content: 'marker' }]);
    await expect.poll(() => transactions.flat().map((r) => r.content)).toEqual(['marker']);
    expect(transactions.flat().filter((r) => r.sessionId === 's1')).toHaveLength(0);
    t.append('b');
    t.end(true);
    await expect
      .poll(() =>
        transactions
          .flat()
          .filter((r) => r.sessionId === 's1')
          .map((r) => [r.content, r.complete]),
      )
      .toEqual([['ab', true]]);
  });

  it('keeps rows queued while the store fails and writes them in order once it recovers', async () => {
    const { store, transactions, state } = recordingStore();
    state.failing = true;
    const buffer = make({ store, intervalMs: 10 });
    const t = buffer.start('s1', []);
    t.append('one ');
    await expect.poll(() => buffer.stats().failures).toBeGreaterThan(0);
    t.append('two');
    t.end(true);
    // Both parts wait in the queue while the store is down.
    await expect.poll(() => buffer.stats().queueDepth).toBe(2);
    expect(transactions).toHaveLength(0);
    state.failing = false;
    await expect.poll(() => buffer.stats().queueDepth, { timeout: 2_000 }).toBe(0);
    expect(
      transactions
        .flat()
        .map((r) => r.content)
        .join(''),
    ).toBe('one two');
  });

  it('drops the oldest rows beyond maxQueue and counts them', async () => {
    const { store, state, transactions } = recordingStore();
    state.failing = true;
    const buffer = make({ store, intervalMs: 10, maxQueue: 100 });
    for (let i = 0; i < 150; i++) buffer.start(`s${i}`, [{ role: 'user', content: 'x' }]).end(false);
    await expect.poll(() => buffer.stats().failures).toBeGreaterThan(0);
    expect(buffer.stats()).toMatchObject({ dropped: 50, queueDepth: 100 });
    // The newest 100 rows are the ones kept, and they are written in order once the store is back.
    state.failing = false;
    await expect.poll(() => transactions.flat().length, { timeout: 2_000 }).toBe(100);
    expect(transactions.flat().map((r) => r.sessionId)).toEqual(
      Array.from({ length: 100 }, (_, i) => `s${i + 50}`),
    );
  });

  it('bounds the queue by characters too: big rows push out the oldest, and are counted', async () => {
    const { store, state, transactions } = recordingStore();
    state.failing = true;
    const buffer = make({ store, intervalMs: 10, maxQueueChars: 10_000 });
    for (let i = 0; i < 5; i++)
      buffer.start(`s${i}`, [{ role: 'user', content: 'x'.repeat(4_000) }]).end(false);
    await expect.poll(() => buffer.stats().failures).toBeGreaterThan(0);
    // 5 x 4,000 characters against a 10,000 limit: the two newest stay.
    expect(buffer.stats()).toMatchObject({ queueDepth: 2, dropped: 3 });
    state.failing = false;
    await expect.poll(() => transactions.flat().map((r) => r.sessionId)).toEqual(['s3', 's4']);
  });

  it('records the request but no reply when the call failed before any content', async () => {
    const { store, transactions } = recordingStore();
    const buffer = make({ store, intervalMs: 10 });
    buffer.start('s1', [{ role: 'user', content: 'q' }]).end(false);
    // Settled: the ended reply has left the open set and nothing waits in the queue.
    await expect
      .poll(() => {
        const { open, queueDepth } = buffer.stats();
        return open === 0 && queueDepth === 0 && transactions.length > 0;
      })
      .toBe(true);
    expect(transactions.flat().map((r) => r.role)).toEqual(['user']);
  });

  it('writes every open reply, marked incomplete, on close', async () => {
    const store = sqliteStore({ path: ':memory:' });
    const history: StoredMessage[] = [];
    const wrapped: TranscriptStore = {
      ...store,
      close: async () => {
        history.push(...(await store.history('s1', 10)));
        await store.close();
      },
    };
    const buffer = new TranscriptBuffer({ store: wrapped, intervalMs: 60_000, minChars: 1e9 });
    const t = buffer.start('s1', [{ role: 'user', content: 'q' }]);
    t.append('partial');
    await buffer.close();
    expect(history.map((m) => [m.role, m.content, m.complete])).toEqual([
      ['user', 'q', true],
      ['assistant', 'partial', false],
    ]);
  });

  it('retries a batch whose commit succeeded but whose acknowledgement was lost without storing it twice', async () => {
    const store = sqliteStore({ path: ':memory:' });
    let lostAcks = 3;
    const lossy: TranscriptStore = {
      ...store,
      write: async (rows) => {
        await store.write(rows);
        if (lostAcks-- > 0) throw new Error('connection reset after COMMIT');
      },
    };
    const buffer = make({ store: lossy, intervalMs: 10, minChars: 1 });
    const t = buffer.start('s1', [{ role: 'user', content: 'q' }]);
    for (let i = 0; i < 20; i++) {
      t.append(` tok${i}`);
      await tick(5);
    }
    t.end(true);
    await expect.poll(() => buffer.stats().queueDepth, { timeout: 5_000 }).toBe(0);
    expect(buffer.stats().failures).toBe(3);
    expect((await store.history('s1', 10)).map((m) => [m.role, m.content, m.complete])).toEqual([
      ['user', 'q', true],
      ['assistant', Array.from({ length: 20 }, (_, i) => ` tok${i}`).join(''), true],
    ]);
  });

  it('retries exactly the batch that failed, even when more rows were queued meanwhile', async () => {
    const attempts: TranscriptRow[][] = [];
    let failures = 1;
    const store: TranscriptStore = {
      write: async (rows) => {
        attempts.push(rows.map((r) => ({ ...r })));
        if (failures-- > 0) throw new Error('store down');
      },
      history: async () => [],
      cleanup: async () => 0,
      close: async () => {},
    };
    const buffer = make({ store, intervalMs: 10, minChars: 1 });
    const t = buffer.start('s1', []);
    t.append('one');
    await expect.poll(() => attempts.length).toBe(1);
    t.append(' two'); // queued while the first batch waits for its retry
    await expect.poll(() => attempts.length, { timeout: 2_000 }).toBeGreaterThanOrEqual(3);
    expect(attempts[1]).toEqual(attempts[0]);
    expect(attempts.slice(1).map((rows) => rows.map((r) => [r.content, r.seq]))).toEqual([
      [['one', 0]],
      [[' two', 1]],
    ]);
    t.end(true);
  });

  it('updates the queue depth metric as soon as rows are queued, before any write settles', async () => {
    const registry = new Registry();
    const subscriptions = llmMetrics(registry);
    for (const [channel, listener] of subscriptions) channel.subscribe(listener);
    try {
      const store: TranscriptStore = {
        write: () => new Promise<void>(() => {}), // never answers
        history: async () => [],
        cleanup: async () => 0,
        close: async () => {},
      };
      const buffer = make({ store, intervalMs: 10 });
      buffer.start('s1', [{ role: 'user', content: 'q' }]).append('partial');
      const depth = async () =>
        (await registry.getSingleMetric('slipstream_transcript_queue_depth')!.get()).values[0]?.value;
      await expect.poll(depth).toBe(2);
    } finally {
      for (const [channel, listener] of subscriptions) channel.unsubscribe(listener);
    }
  });

  it('gives up at the close deadline when the store hangs, and counts and logs the rows it could not write', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const registry = new Registry();
    const subscriptions = llmMetrics(registry);
    for (const [channel, listener] of subscriptions) channel.subscribe(listener);
    try {
      const hung: TranscriptStore = {
        write: () => new Promise<void>(() => {}),
        history: async () => [],
        cleanup: async () => 0,
        close: () => new Promise<void>(() => {}), // pool.end() on a hung connection
      };
      const buffer = new TranscriptBuffer({ store: hung, intervalMs: 10, logger });
      const t = buffer.start('s1', [{ role: 'user', content: 'q' }]);
      t.append('partial');
      await tick(30);
      const closed = await Promise.race([
        buffer.close(200).then(() => 'closed'),
        tick(10_000).then(() => 'still closing'),
      ]);
      expect(closed).toBe('closed');
      // The request, the part in flight, and the row closing the cut reply as incomplete.
      expect(buffer.stats()).toMatchObject({ queueDepth: 0, dropped: 3 });
      expect(
        lines.find((l) => l.msg === 'transcript rows not written by the shutdown deadline'),
      ).toMatchObject({
        unwritten: 3,
      });
      const dropped = await registry.getSingleMetric('slipstream_transcript_dropped_rows_total')!.get();
      expect(dropped.values).toEqual([{ labels: { reason: 'shutdown' }, value: 3 }]);
      // A request that arrives after the deadline is counted too, never silently lost.
      buffer.start('s2', [{ role: 'user', content: 'late' }]);
      expect(buffer.stats().dropped).toBe(4);
    } finally {
      for (const [channel, listener] of subscriptions) channel.unsubscribe(listener);
    }
  });
});
