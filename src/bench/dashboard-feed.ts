// Keeps a dashboard feed open during a measurement, as a browser tab on /dashboard would.
import { request } from 'undici';
import { assertLoopback } from './http-task.js';

export interface DashboardFeed {
  /** Feed messages received so far (one a second while it is open). */
  frames(): number;
  close(): void;
}

/**
 * Opens `GET <adminUrl>/dashboard/events` and resolves once its first frame arrived (the gateway is then
 * counting events for it); reads and counts every message until `close()`.
 */
export async function openDashboardFeed(adminUrl: string): Promise<DashboardFeed> {
  assertLoopback(adminUrl);
  const controller = new AbortController();
  const response = await request(`${adminUrl}/dashboard/events`, { signal: controller.signal });
  if (response.statusCode !== 200) {
    await response.body.dump();
    throw new Error(`dashboard feed answered ${response.statusCode}`);
  }
  let frames = 0;
  await new Promise<void>((resolve, reject) => {
    response.body.on('data', (chunk: Buffer) => {
      // One message per frame: count its `id:` lines.
      for (let at = chunk.indexOf('id: '); at !== -1; at = chunk.indexOf('id: ', at + 4)) frames++;
      if (frames > 0) resolve();
    });
    response.body.once('error', (error: Error) => (controller.signal.aborted ? resolve() : reject(error)));
  });
  return { frames: () => frames, close: () => controller.abort() };
}
