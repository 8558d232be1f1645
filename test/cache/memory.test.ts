import { describe, expect, it } from 'vitest';
import { memoryCache } from '../../src/cache/memory.js';
import { makeEntry } from '../helpers/entries.js';

describe('memory store', () => {
  const entry = (now: number, bytes: number, ttl = 1000) =>
    makeEntry(now, ttl, { body: Buffer.alloc(bytes) });

  it('forgets entries whose last useful moment has passed', async () => {
    let now = 0;
    const store = memoryCache({ now: () => now });
    await store.set('k', entry(now, 10));
    expect(await store.get('k')).toBeDefined();
    now = 1000;
    expect(await store.get('k')).toBeUndefined();
  });

  it('evicts least recently used entries past its byte bound, and counts evictions', async () => {
    const evicted: string[] = [];
    const store = memoryCache({ maxBytes: 3000, onEvict: (key) => evicted.push(key) });
    const now = Date.now();
    await store.set('a', entry(now, 1000));
    await store.set('b', entry(now, 1000));
    await store.get('a');
    await store.set('c', entry(now, 1000));
    expect(evicted).toEqual(['b']);
    expect(await store.get('a')).toBeDefined();
  });

  it('purges by key prefix', async () => {
    const store = memoryCache();
    const now = Date.now();
    for (const key of ['quotes|GET /q/A|x', 'quotes|GET /q/B|y', 'traces|GET /t|z'])
      await store.set(key, entry(now, 1));
    expect(await store.purge('quotes|')).toBe(2);
    expect(await store.get('traces|GET /t|z')).toBeDefined();
  });

  it('invalidates whole key groups, variants included, and nothing else', async () => {
    const store = memoryCache();
    const now = Date.now();
    const keys = ['r|GET /a|x', 'r|GET /a|y', 'r|GET /a|y.v1', 'r|HEAD /a|x', 'r|GET /ab|x', 'r|GET /a/b|x'];
    for (const key of keys) await store.set(key, entry(now, 1));
    expect(await store.invalidate(['r|GET /a|', 'r|HEAD /a|', 'r|GET /none|'])).toBe(4);
    for (const key of keys.slice(0, 4)) expect(await store.get(key)).toBeUndefined();
    expect(await store.get('r|GET /ab|x')).toBeDefined();
    expect(await store.get('r|GET /a/b|x')).toBeDefined();
  });

  it('keeps its group index to the keys it holds, through eviction, expiry and replacement', async () => {
    let now = 0;
    const store = memoryCache({ maxEntries: 2, now: () => now });
    await store.set('r|GET /a|1', entry(now, 1, 10));
    await store.set('r|GET /a|1', entry(now, 1, 10)); // replaced: still indexed once
    await store.set('r|GET /a|2', entry(now, 1, 10));
    await store.set('r|GET /a|3', entry(now, 1, 1_000)); // evicts 1
    now = 100;
    expect(await store.get('r|GET /a|2')).toBeUndefined(); // expired
    expect(await store.invalidate(['r|GET /a|'])).toBe(1); // only 3 was left to delete
    expect(store.stats().entries).toBe(0);
  });
});
