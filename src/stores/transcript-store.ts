// What a transcript store does: append-or-insert message rows in one transaction, read a session, apply retention.

/**
 * One write: inserts message `messageId`, or appends `content` to it when it exists (a streamed reply
 * arrives as several rows). `complete` replaces the stored flag.
 */
export interface TranscriptRow {
  sessionId: string;
  messageId: string;
  role: string;
  content: string;
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
  /** Writes every row in one transaction (all or nothing). Rows for one message keep their order. */
  write(rows: readonly TranscriptRow[]): Promise<void>;
  /** A session's messages, oldest first, at most `limit`. */
  history(sessionId: string, limit: number): Promise<StoredMessage[]>;
  /** Applies retention; resolves with the number of messages deleted. */
  cleanup(retention: RetentionOptions): Promise<number>;
  close(): Promise<void>;
}

/**
 * Folds rows of the same message within one batch into one row (contents joined in order, the last
 * `complete` kept), at the position of its first row: one upsert per message per transaction, which
 * PostgreSQL's `ON CONFLICT DO UPDATE` requires.
 */
export function mergeRows(rows: readonly TranscriptRow[]): TranscriptRow[] {
  const byId = new Map<string, TranscriptRow>();
  for (const row of rows) {
    const seen = byId.get(row.messageId);
    if (seen === undefined) byId.set(row.messageId, { ...row });
    else {
      seen.content += row.content;
      seen.complete = row.complete;
    }
  }
  return [...byId.values()];
}
