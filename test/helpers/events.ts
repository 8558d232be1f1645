// Records what a telemetry channel publishes, for tests that check event payloads.
import type { Channel } from 'node:diagnostics_channel';
import { afterEach } from 'vitest';

const active: Array<() => void> = [];
afterEach(() => {
  for (const stop of active.splice(0)) stop();
});

/** Every message published on `channel` until the end of the current test, in order. */
export function recordEvents<T = Record<string, unknown>>(channel: Channel): T[] {
  const messages: T[] = [];
  const listener = (message: unknown) => messages.push(message as T);
  channel.subscribe(listener);
  active.push(() => channel.unsubscribe(listener));
  return messages;
}
