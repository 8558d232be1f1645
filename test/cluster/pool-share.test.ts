import { describe, expect, it } from 'vitest';
import { withPoolShare } from '../../src/cluster/worker.js';
import { parseConfig } from '../../src/config/load.js';

const config = parseConfig(
  `upstreams: {}
mcp:
  servers:
    a: { type: stdio, command: node, pool: { min: 3, max: 5 } }
    b: { type: stdio, command: node, pool: { min: 1, max: 1 } }
    r: { type: http, url: "http://127.0.0.1:9/mcp" }
`,
  'slipstream.yaml',
);

function pools(worker: number, workers: number) {
  const { servers } = withPoolShare(config, { worker, workers }).mcp!;
  return Object.fromEntries(
    Object.entries(servers).map(([name, s]) => [
      name,
      s.type === 'stdio' ? [s.pool.min, s.pool.max] : 'http',
    ]),
  );
}

describe("a worker's share of the stdio MCP pools", () => {
  it('divides pool.min and pool.max among the workers, the first ones taking the remainder', () => {
    expect([pools(1, 2), pools(2, 2)]).toEqual([
      { a: [2, 3], b: [1, 1], r: 'http' },
      { a: [1, 2], b: [1, 1], r: 'http' },
    ]);
    // The shares add up to the configured size whenever it is at least one per worker.
    const sum = (i: 0 | 1) => [1, 2, 3].reduce((n, w) => n + (pools(w, 3).a as number[])[i]!, 0);
    expect([sum(0), sum(1)]).toEqual([3, 5]);
  });

  it('leaves one worker with the whole pool', () => {
    expect(pools(1, 1)).toEqual({ a: [3, 5], b: [1, 1], r: 'http' });
  });
});
