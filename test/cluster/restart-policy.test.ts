import { describe, expect, it } from 'vitest';
import { RestartPolicy } from '../../src/cluster/restart-policy.js';

const young = 1_000;
const healthy = 60_000;

describe('restart policy', () => {
  it('restarts at once after a process ran long enough to count as healthy', () => {
    const policy = new RestartPolicy({ random: () => 1 });
    expect(policy.exited(healthy)).toEqual({ restart: true, delayMs: 0 });
    expect(policy.exited(healthy)).toEqual({ restart: true, delayMs: 0 });
  });

  it('doubles the delay after each young exit in a row, up to the cap', () => {
    const policy = new RestartPolicy({
      baseDelayMs: 100,
      maxDelayMs: 300,
      maxYoungExits: 10,
      random: () => 1,
    });
    const delays = [1, 2, 3, 4].map(() => policy.exited(young));
    expect(delays).toEqual([
      { restart: true, delayMs: 100 },
      { restart: true, delayMs: 200 },
      { restart: true, delayMs: 300 },
      { restart: true, delayMs: 300 },
    ]);
  });

  it('jitters each delay down by at most half', () => {
    const low = new RestartPolicy({ baseDelayMs: 100, random: () => 0 });
    expect(low.exited(young)).toEqual({ restart: true, delayMs: 50 });
    expect(low.exited(young)).toEqual({ restart: true, delayMs: 100 });
  });

  it('reports a crash loop at the maxYoungExits-th young exit in a row and never restarts it', () => {
    const policy = new RestartPolicy({ maxYoungExits: 3, random: () => 1 });
    expect(policy.exited(young).restart).toBe(true);
    expect(policy.exited(young).restart).toBe(true);
    expect(policy.exited(young)).toEqual({ restart: false, youngExits: 3 });
  });

  it('forgets earlier young exits once a process ran long enough', () => {
    const policy = new RestartPolicy({ baseDelayMs: 100, maxYoungExits: 3, random: () => 1 });
    policy.exited(young);
    policy.exited(young);
    expect(policy.exited(healthy)).toEqual({ restart: true, delayMs: 0 });
    expect(policy.exited(young)).toEqual({ restart: true, delayMs: 100 });
    expect(policy.exited(young).restart).toBe(true);
  });

  it('refuses options that could never restart or never stop', () => {
    expect(() => new RestartPolicy({ maxYoungExits: 0 })).toThrow(RangeError);
    expect(() => new RestartPolicy({ baseDelayMs: 500, maxDelayMs: 100 })).toThrow(RangeError);
  });
});
