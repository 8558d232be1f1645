import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startBareProxy } from '../../emulators/bare-proxy.js';
import type { BareProxy } from '../../emulators/bare-proxy.js';
import { startHttpEmulator } from '../../emulators/http-upstream.js';
import type { RunningEmulator } from '../../emulators/http-upstream.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

async function chain(connections?: number): Promise<{ upstream: RunningEmulator; proxy: BareProxy }> {
  const upstream = await startHttpEmulator({ latency: '0ms' });
  closers.push(() => upstream.close());
  const proxy = await startBareProxy(upstream.url, connections);
  closers.push(() => proxy.close());
  return { upstream, proxy };
}

describe('bare proxy (the floor benchmarks compare against)', () => {
  it("forwards the client's headers (emulator controls, credentials) and body, with the upstream's Host", async () => {
    const { upstream, proxy } = await chain();
    const response = await request(`${proxy.url}/things?echo=headers`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-emulate-tokens': '7',
        authorization: 'Bearer t',
      },
      body: '{"a":1}',
    });
    expect(response.statusCode).toBe(200);
    const body = (await response.body.json()) as { headers: Record<string, string> };
    expect(body.headers['x-emulate-tokens']).toBe('7');
    expect(body.headers.authorization).toBe('Bearer t');
    expect(body.headers['content-type']).toBe('application/json');
    expect(body.headers.host).toBe(new URL(upstream.url).host);
  });

  it('answers 502 when the upstream is gone', async () => {
    const { upstream, proxy } = await chain(1);
    await upstream.close();
    closers.shift();
    const response = await request(`${proxy.url}/x`);
    expect(response.statusCode).toBe(502);
    await response.body.dump();
  });
});
