import { describe, expect, it } from 'vitest';
import { cpuTimeMs } from '../../src/bench/cpu-time.js';

describe('process CPU time from /proc', () => {
  it.runIf(process.platform === 'linux')(
    'counts the CPU this process spends, as Node itself counts it',
    () => {
      const before = cpuTimeMs(process.pid)!;
      const start = process.cpuUsage();
      let spent = 0;
      while (spent < 300_000) {
        const used = process.cpuUsage(start);
        spent = used.user + used.system;
      }
      // 10 ms ticks: allow two of them for rounding at either end.
      expect(cpuTimeMs(process.pid)! - before).toBeGreaterThanOrEqual(280);
    },
  );

  it('is undefined for a process that does not exist', () => {
    expect(cpuTimeMs(2 ** 22 + 1)).toBeUndefined();
  });
});
