import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { expectedContent, startLlmEmulator } from '../../emulators/llm.js';
import type { RunningLlmEmulator } from '../../emulators/llm.js';
import { spawnCli, stopAll } from '../helpers/processes.js';
import { contentOf } from '../helpers/sse.js';

const INTERVAL_MS = 200;

function stored(path: string, session: string): { content: string; complete: boolean } | undefined {
  const db = new Database(path, { readonly: true });
  try {
    const row = db
      .prepare(
        "SELECT content, complete FROM messages WHERE session_id = ? AND role = 'assistant' ORDER BY id DESC LIMIT 1",
      )
      .get(`anon:${session}`) as { content: string; complete: number } | undefined; // no principal header: the anonymous scope
    return row === undefined ? undefined : { content: row.content, complete: row.complete === 1 };
  } finally {
    db.close();
  }
}

describe('transcript durability of a real `slipstream serve` process', () => {
  let emulator: RunningLlmEmulator;
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-durability-'));

  beforeAll(async () => {
    emulator = await startLlmEmulator();
  });
  afterAll(async () => {
    await stopAll();
    await emulator?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function serve(name: string, grace = '10s') {
    const db = join(dir, `${name}.db`);
    const config = join(dir, `${name}.yaml`);
    writeFileSync(
      config,
      `server: { listen: "127.0.0.1:0", shutdownGrace: ${grace} }
admin: { listen: "127.0.0.1:0" }
telemetry: { log: { level: warn } }
upstreams: {}
llm:
  providers:
    emu: { baseUrl: "${emulator.url}/v1", models: { m: emu-small } }
  transcripts:
    sqlite: { path: "${db}" }
    interval: ${INTERVAL_MS}ms
    minChars: 1000000
`,
    );
    return { db, child: await spawnCli(['serve', '-c', config]) };
  }

  /** Starts a stream and resolves with a reader recording what arrived when. */
  async function open(url: string, session: string, tokens: number, gapMs: number) {
    const response = await request(`${url}/v1/chat/completions`, {
      method: 'POST',
      reset: true,
      headers: {
        'content-type': 'application/json',
        'x-slipstream-session': session,
        'x-emulate-tokens': String(tokens),
        'x-emulate-gap': `${gapMs}ms`,
      },
      body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'q' }] }),
    });
    expect(response.statusCode).toBe(200);
    const received: Array<{ at: number; text: string }> = [];
    let text = '';
    const done = (async () => {
      try {
        for await (const chunk of response.body) {
          text += (chunk as Buffer).toString();
          received.push({ at: performance.now(), text });
        }
      } catch {
        // the server was killed
      }
      return text;
    })();
    return { received, done };
  }

  it('writes the whole reply when SIGTERM arrives mid-stream (the stream finishes first)', async () => {
    const { db, child } = await serve('sigterm');
    const stream = await open(child.url, 'term', 30, 20);
    await expect.poll(() => contentOf(stream.received.at(-1)?.text ?? '').length).toBeGreaterThan(20);
    const exited = child.stop('SIGTERM');
    const text = await stream.done;
    expect(await exited).toBe(0);
    expect(contentOf(text)).toBe(expectedContent(30));
    expect(stored(db, 'term')).toEqual({ content: expectedContent(30), complete: true });
  });

  it('ends a stream still open when the grace runs out with an SSE error event, and stores it as incomplete', async () => {
    const { db, child } = await serve('grace', '400ms');
    const stream = await open(child.url, 'grace', 1_000, 20);
    await expect.poll(() => contentOf(stream.received.at(-1)?.text ?? '').length).toBeGreaterThan(20);
    const exited = child.stop('SIGTERM');
    const text = await stream.done;
    expect(await exited).toBe(0);
    expect(text).toMatch(/event: error\ndata: \{"error":\{"code":"GW_SHUTTING_DOWN"[^\n]*\n\n$/);
    const row = stored(db, 'grace');
    expect(row?.complete).toBe(false);
    expect(contentOf(text).startsWith(row!.content)).toBe(true);
    expect(row!.content.length).toBeGreaterThan(20);
  });

  it('loses at most one flush interval of the reply on SIGKILL', async () => {
    const { db, child } = await serve('sigkill');
    const stream = await open(child.url, 'kill', 500, 10);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const killedAt = performance.now();
    await child.stop('SIGKILL');
    await stream.done;
    const row = stored(db, 'kill');
    expect(row).toBeDefined();
    expect(row!.complete).toBe(false);
    const all = contentOf(stream.received.at(-1)!.text);
    expect(all.startsWith(row!.content)).toBe(true);
    // Everything the client had one interval (plus scheduling slack) before the kill must be stored.
    const bound = killedAt - INTERVAL_MS - 150;
    const before = stream.received.filter((r) => r.at <= bound).at(-1);
    expect(before).toBeDefined();
    expect(row!.content.length).toBeGreaterThanOrEqual(contentOf(before!.text).length);
  });
});
