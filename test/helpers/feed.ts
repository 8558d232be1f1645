// Reads the dashboard's live feed (server-sent events) in tests, frame by frame.
import { request } from 'undici';
import type { LiveFrame } from '../../src/telemetry/live/live-stats.js';

export interface FeedMessage {
  seq: number;
  dropped: number;
  frame: LiveFrame;
}

export interface OpenFeed {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Every byte received so far, as text. */
  text(): string;
  /** Resolves with the first frame (from now on) that satisfies `until`; rejects after `timeoutMs`. */
  next(until?: (message: FeedMessage) => boolean, timeoutMs?: number): Promise<FeedMessage>;
  close(): void;
}

/** Opens `GET <adminUrl>/dashboard/events`; a non-200 answer is returned with its body in `text()`. */
export async function openFeed(adminUrl: string, headers: Record<string, string> = {}): Promise<OpenFeed> {
  const controller = new AbortController();
  const response = await request(`${adminUrl}/dashboard/events`, { headers, signal: controller.signal });
  let text = '';
  let parsed = 0;
  const messages: FeedMessage[] = [];
  const waiters = new Set<() => void>();
  response.body.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
    let end: number;
    while ((end = text.indexOf('\n\n', parsed)) !== -1) {
      const block = text.slice(parsed, end);
      parsed = end + 2;
      const data = block.split('\n').find((line) => line.startsWith('data: '));
      if (data !== undefined && block.startsWith('id: '))
        messages.push(JSON.parse(data.slice(6)) as FeedMessage);
    }
    for (const wake of waiters) wake();
  });
  response.body.on('error', () => {});
  let seen = 0;
  return {
    status: response.statusCode,
    headers: response.headers,
    text: () => text,
    next(until = () => true, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching feed frame within ${timeoutMs} ms`));
        }, timeoutMs);
        function check() {
          while (seen < messages.length) {
            const message = messages[seen++]!;
            if (until(message)) {
              clearTimeout(timer);
              waiters.delete(check);
              resolve(message);
              return;
            }
          }
        }
        waiters.add(check);
        check();
      });
    },
    close: () => controller.abort(),
  };
}
