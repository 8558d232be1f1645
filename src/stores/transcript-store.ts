// What a transcript store does: apply message rows exactly once in one transaction, read a session, apply retention.

/**
 * One write: inserts message `messageId`, or appends `content` to it when it exists (a streamed reply
 * arrives as several rows). `complete` replaces the stored flag. The message id names one turn of one
 * session; `seq` numbers the message's rows from 0, so a store applies a row only when its `seq` is above
 * the last one it applied to that message: a batch written again (its commit succeeded, its
 * acknowledgement was lost) or a late duplicate changes nothing.
 */
export interface TranscriptRow {
  sessionId: string;
  messageId: string;
  role: string;
  content: string;
  /** The row's number within its message, from 0, increasing; gaps (dropped rows) are allowed. */
  seq: number;
  complete: boolean;
  /** Epoch milliseconds when the message began. */
  createdAt: number;
}

/** A stored message, as `GET /v1/sessions/:id` returns it. */
export interface StoredMessage {
  id: string;
  role: string;
  content: string;
  /** False while a reply is streaming, or when its stream was cut. */
  complete: boolean;
  createdAt: number;
}

export interface RetentionOptions {
  /** Messages created longer ago than this are deleted. */
  maxAgeMs: number;
  /** Oldest messages beyond this count in one session are deleted. */
  maxMessagesPerSession: number;
  /** Least recently active sessions beyond this count are deleted. */
  maxSessions: number;
}

export interface TranscriptStore {
  /**
   * Writes every row in one transaction (all or nothing), skipping rows already applied (by `seq`). Rows
   * for one message keep their order; a store may apply them as one. Settles in bounded time (a hung
   * connection is an error).
   */
  write(rows: readonly TranscriptRow[]): Promise<void>;
  /** A session's messages, oldest first, at most `limit`. */
  history(sessionId: string, limit: number): Promise<StoredMessage[]>;
  /** Applies retention; resolves with the number of messages deleted. */
  cleanup(retention: RetentionOptions): Promise<number>;
  /**
   * Closes the store's connections, waiting at most `timeoutMs` (default 1,000) for them to close
   * gracefully, then cutting the rest, so a hung connection never holds the process.
   */
  close(timeoutMs?: number): Promise<void>;
}
