// Transcript buffer: collects streamed reply parts per conversation and writes them in batched transactions off the hot path.
import { randomUUID } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import { events, publish } from '../telemetry/events.js';
import type { TranscriptDropEvent } from '../telemetry/events.js';
import type {
  RetentionOptions,
  StoredMessage,
  TranscriptRow,
  TranscriptStore,
} from '../stores/transcript-store.js';

export interface TranscriptBufferOptions {
  store: TranscriptStore;
  /** Buffered parts are written at least this often, in ms. Default 200. */
  intervalMs?: number;
  /** A stream that buffered this many characters is written at the next turn of the event loop. Default 1,024. */
  minChars?: number;
  /** false: nothing is written while a reply streams, only the final message. Default true. */
  persistDeltas?: boolean;
  /**
   * Rows waiting for the store (the batch being written included); beyond it the oldest queued rows are
   * dropped and counted (never the batch being written: it is retried unchanged). Default 50,000.
   */
  maxQueue?: number;
  /** Characters of content waiting for the store; beyond it the oldest rows are dropped and counted. Default 64 Mi. */
  maxQueueChars?: number;
  /** Rows per transaction. Default 64: a SQLite commit of that many rows blocks the event loop well under 1 ms. */
  batchRows?: number;
  /** Characters kept per reply; the rest is not stored. Default 8 Mi. */
  maxReplyChars?: number;
  /** Retention applied every `cleanupIntervalMs` (and once at start-up). */
  retention?: RetentionOptions & { cleanupIntervalMs: number };
  logger?: Logger;
}

/** A request message to persist (string content; other content is stored as JSON). */
export interface TranscriptMessage {
  role: string;
  content: string;
}

/** One streamed reply being recorded. */
export interface Transcript {
  /** Adds relayed content. Costs an array push; never touches the store. */
  append(text: string): void;
  /** The reply ended: `complete` when the stream finished normally. Written at the next turn of the loop. */
  end(complete: boolean): void;
}

export interface TranscriptBufferStats {
  open: number;
  /** Rows waiting for the store, the batch being written included. */
  queueDepth: number;
  rowsWritten: number;
  transactions: number;
  /** Rows given up on: pushed out of a full queue, or not written by the shutdown deadline. */
  dropped: number;
  failures: number;
}

const MAX_RETRY_DELAY_MS = 5_000;
const FIRST_RETRY_DELAY_MS = 100;
/** How long past its own deadline `close` waits for a store that was asked to cut its connections. */
const STORE_CLOSE_SLACK_MS = 100;

interface OpenTranscript extends Transcript {
  readonly sessionId: string;
  readonly messageId: string;
  readonly createdAt: number;
  /** The `seq` of this reply's next row. */
  seq: number;
  parts: string[];
  /** Characters in `parts` (not yet queued). */
  pending: number;
  /** Characters seen in total (for `maxReplyChars`). */
  total: number;
  ended: boolean;
  complete: boolean;
}

/** A batch taken off the queue: written, or retried exactly as it is, until it is written or given up. */
interface Batch {
  readonly rows: TranscriptRow[];
  readonly chars: number;
}

/**
 * Buffers transcripts and writes them to a store. Appends only push onto an array; every `intervalMs`
 * (or as soon as one reply buffered `minChars`, or ended) the parts of every open reply are joined once
 * and queued as one row per reply, numbered per reply (`seq`), then written in transactions of
 * `batchRows` rows, yielding to the event loop between transactions. A failing store never reaches a
 * stream: rows stay queued (bounded by `maxQueue` rows and `maxQueueChars` characters, oldest dropped and
 * counted) and the batch is retried with exponential backoff up to 5 s.
 *
 * Exactly once: a batch, once taken off the queue, is retried unchanged until it is written, so a
 * message's rows in two batches never overlap, and the store skips a row whose `seq` it has applied.
 * A commit whose acknowledgement was lost is therefore not applied twice.
 * On a hard kill, at most the last `intervalMs` of content is lost; `close()` writes everything it can
 * before its deadline and counts (and logs) the rest.
 */
export class TranscriptBuffer {
  private readonly store: TranscriptStore;
  private readonly intervalMs: number;
  private readonly minChars: number;
  private readonly persistDeltas: boolean;
  private readonly maxQueue: number;
  private readonly maxQueueChars: number;
  /** Characters of content in `queue`. */
  private queuedChars = 0;
  private readonly batchRows: number;
  private readonly maxReplyChars: number;
  private readonly logger: Logger | undefined;
  private readonly open = new Set<OpenTranscript>();
  /** Rows not yet in a batch, oldest first. */
  private queue: TranscriptRow[] = [];
  /** The batch being written or waiting for its retry. */
  private batch: Batch | undefined;
  private readonly ticker: NodeJS.Timeout;
  private readonly cleaner: NodeJS.Timeout | undefined;
  private flushScheduled = false;
  private writing = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = 0;
  private idleWaiters: Array<() => void> = [];
  private lastDropLogAt = 0;
  private closed = false;
  /** Set at the shutdown deadline: what is still queued has been counted as dropped; nothing more is written. */
  private abandoned = false;
  private readonly counters = { rowsWritten: 0, transactions: 0, dropped: 0, failures: 0 };

  constructor(options: TranscriptBufferOptions) {
    this.store = options.store;
    this.intervalMs = options.intervalMs ?? 200;
    this.minChars = options.minChars ?? 1_024;
    this.persistDeltas = options.persistDeltas ?? true;
    this.maxQueue = options.maxQueue ?? 50_000;
    this.maxQueueChars = options.maxQueueChars ?? 64 * 1024 ** 2;
    this.batchRows = options.batchRows ?? 64;
    this.maxReplyChars = options.maxReplyChars ?? 8 * 1024 ** 2;
    this.logger = options.logger;
    this.ticker = setInterval(() => this.flush(), this.intervalMs);
    this.ticker.unref();
    const retention = options.retention;
    if (retention !== undefined) {
      const clean = () => {
        this.store.cleanup(retention).then(
          (deleted) => {
            if (deleted > 0) this.logger?.info({ deleted }, 'transcript retention applied');
          },
          (error: unknown) => this.logger?.warn({ err: error }, 'transcript retention failed'),
        );
      };
      this.cleaner = setInterval(clean, retention.cleanupIntervalMs);
      this.cleaner.unref();
      setTimeout(clean, 1_000).unref();
    }
  }

  /**
   * Starts recording a reply in `sessionId`. `messages` (the request's new messages) are queued at once,
   * before the reply, so a session reads in conversation order.
   */
  start(sessionId: string, messages: readonly TranscriptMessage[]): Transcript {
    const now = Date.now();
    if (messages.length > 0) {
      if (this.closed) this.drop(messages.length, 'shutdown');
      else {
        this.enqueue(
          messages.map((m) => ({
            sessionId,
            messageId: randomUUID(),
            role: m.role,
            content: m.content,
            seq: 0,
            complete: true,
            createdAt: now,
          })),
        );
        this.scheduleFlush();
      }
    }
    const transcript: OpenTranscript = {
      sessionId,
      messageId: randomUUID(),
      createdAt: now,
      seq: 0,
      parts: [],
      pending: 0,
      total: 0,
      ended: false,
      complete: false,
      append: (text) => this.append(transcript, text),
      end: (complete) => {
        if (transcript.ended) return;
        transcript.ended = true;
        transcript.complete = complete;
        this.scheduleFlush();
      },
    };
    if (this.closed) transcript.ended = true;
    else this.open.add(transcript);
    return transcript;
  }

  private append(t: OpenTranscript, text: string): void {
    if (t.ended || t.total >= this.maxReplyChars) return;
    const part =
      t.total + text.length > this.maxReplyChars ? text.slice(0, this.maxReplyChars - t.total) : text;
    t.parts.push(part);
    t.pending += part.length;
    t.total += part.length;
    if (this.persistDeltas && t.pending >= this.minChars) this.scheduleFlush();
  }

  /** Queues the buffered parts of every open reply (one row each) and starts writing. */
  flush(): void {
    const rows: TranscriptRow[] = [];
    for (const t of this.open) {
      if (!t.ended && (!this.persistDeltas || t.parts.length === 0)) continue;
      if (t.ended && !t.complete && t.total === 0) {
        this.open.delete(t); // failed before any content: no reply to record
        continue;
      }
      rows.push({
        sessionId: t.sessionId,
        messageId: t.messageId,
        role: 'assistant',
        content: t.parts.length === 1 ? t.parts[0]! : t.parts.join(''),
        seq: t.seq++,
        complete: t.ended && t.complete,
        createdAt: t.createdAt,
      });
      t.parts = [];
      t.pending = 0;
      if (t.ended) this.open.delete(t);
    }
    if (rows.length > 0) this.enqueue(rows);
    this.pump();
  }

  /** A session's stored messages, oldest first. */
  history(sessionId: string, limit = 1_000): Promise<StoredMessage[]> {
    return this.store.history(sessionId, limit);
  }

  stats(): TranscriptBufferStats {
    return { open: this.open.size, queueDepth: this.depth(), ...this.counters };
  }

  /**
   * Ends every open reply (stored as incomplete), writes everything queued, then closes the store, all
   * within `timeoutMs` (default 5,000; the gateway passes what is left of `server.shutdownGrace`). A
   * pending retry is tried at once. Rows not written by then are counted as dropped (reason
   * `shutdown`) and logged with their number; the store's connections are then cut, so a hung store
   * never holds the process. Some of those rows may have been committed on a connection cut before it
   * answered: the count is an upper bound.
   */
  async close(timeoutMs = 5_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const deadline = performance.now() + timeoutMs;
    clearInterval(this.ticker);
    if (this.cleaner !== undefined) clearInterval(this.cleaner);
    for (const t of this.open) {
      if (t.ended) continue; // ended normally, not written yet
      t.ended = true;
      t.complete = false;
    }
    if (this.retryTimer !== undefined) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    this.flush();
    if (this.depth() > 0 || this.writing) await this.idleOrAfter(timeoutMs);
    clearTimeout(this.retryTimer);
    const unwritten = this.depth();
    if (unwritten > 0) {
      this.abandoned = true;
      this.queue = [];
      this.queuedChars = 0;
      this.batch = undefined;
      this.drop(unwritten, 'shutdown');
      this.logger?.error(
        { unwritten, timeoutMs, failures: this.counters.failures },
        'transcript rows not written by the shutdown deadline',
      );
      publish(events.transcriptQueued, { rows: 0, queueDepth: 0 });
    }
    const left = Math.max(0, deadline - performance.now());
    // The store cuts its own connections at `left`; the race only guards against a store that does not.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.store.close(left).catch((error: unknown) => {
        this.logger?.warn({ err: error }, 'transcript store did not close cleanly');
      }),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, left + STORE_CLOSE_SLACK_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Rows waiting for the store: queued, and in the batch being written. */
  private depth(): number {
    return this.queue.length + (this.batch?.rows.length ?? 0);
  }

  /** Resolves when nothing is left to write, or after `ms`. */
  private async idleOrAfter(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
    clearTimeout(timer);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /**
   * Queues rows; past `maxQueue` rows or `maxQueueChars` characters (the batch being written counted
   * in both), the oldest queued rows are dropped. Publishes the new depth.
   */
  private enqueue(rows: TranscriptRow[]): void {
    for (const row of rows) {
      this.queue.push(row);
      this.queuedChars += row.content.length;
    }
    // The newest row always stays: a single reply is bounded by `maxReplyChars`.
    let excess = Math.min(Math.max(0, this.depth() - this.maxQueue), this.queue.length - 1);
    let chars = this.queuedChars + (this.batch?.chars ?? 0);
    for (let i = 0; i < excess; i++) chars -= this.queue[i]!.content.length;
    while (chars > this.maxQueueChars && excess < this.queue.length - 1)
      chars -= this.queue[excess++]!.content.length;
    if (excess > 0) {
      for (let i = 0; i < excess; i++) this.queuedChars -= this.queue[i]!.content.length;
      this.queue.splice(0, excess);
      this.drop(excess, 'queue-full');
    }
    publish(events.transcriptQueued, { rows: rows.length, queueDepth: this.depth() });
  }

  private drop(rows: number, reason: TranscriptDropEvent['reason']): void {
    this.counters.dropped += rows;
    publish(events.transcriptDrop, { rows, reason });
    const now = Date.now();
    if (reason === 'queue-full' && now - this.lastDropLogAt > 10_000) {
      this.lastDropLogAt = now;
      this.logger?.warn(
        { dropped: rows, totalDropped: this.counters.dropped },
        'transcript rows dropped: the store is failing and the queue is full',
      );
    }
  }

  /** Writes queued rows batch by batch; one writer at a time, paused while a retry waits. */
  private pump(): void {
    if (this.abandoned) return;
    if (this.writing || this.retryTimer !== undefined || this.depth() === 0) {
      if (!this.writing && this.depth() === 0) this.wakeIdle();
      return;
    }
    this.writing = true;
    this.writeAll().then(
      () => {
        this.writing = false;
        if (this.depth() === 0) this.wakeIdle();
      },
      () => {
        this.writing = false;
      },
    );
  }

  private async writeAll(): Promise<void> {
    for (;;) {
      if (this.batch === undefined) {
        if (this.queue.length === 0) return;
        const rows = this.queue.splice(0, this.batchRows);
        let chars = 0;
        for (const row of rows) chars += row.content.length;
        this.queuedChars -= chars;
        this.batch = { rows, chars };
      }
      const batch = this.batch;
      const started = performance.now();
      try {
        await this.store.write(batch.rows);
      } catch (error) {
        if (this.abandoned) return; // counted at the shutdown deadline
        this.counters.failures++;
        this.retryDelayMs = Math.min(
          MAX_RETRY_DELAY_MS,
          Math.max(FIRST_RETRY_DELAY_MS, this.retryDelayMs * 2),
        );
        const queueDepth = this.depth();
        publish(events.transcriptStoreError, { error, queueDepth, retryInMs: this.retryDelayMs });
        if (this.counters.failures === 1 || this.retryDelayMs === MAX_RETRY_DELAY_MS) {
          this.logger?.warn(
            { err: error, queueDepth, retryInMs: this.retryDelayMs },
            'transcript store write failed; retrying',
          );
        }
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.pump();
        }, this.retryDelayMs);
        this.retryTimer.unref();
        return;
      }
      if (this.abandoned) return;
      this.batch = undefined;
      this.retryDelayMs = 0;
      this.counters.rowsWritten += batch.rows.length;
      this.counters.transactions++;
      publish(events.transcriptFlush, {
        rows: batch.rows.length,
        chars: batch.chars,
        durationMs: performance.now() - started,
        queueDepth: this.depth(),
      });
      if (this.queue.length > 0) await yieldToLoop();
    }
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
