// Latency specs for emulators: "50ms", "uniform:10ms-50ms", "normal:100ms,20ms", "exp:20ms".
import { parseDurationMs } from '../src/config/units.js';

/** Draws a delay in ms from a random source in [0, 1). */
export type LatencySampler = (random: () => number) => number;

function duration(text: string, spec: string): number {
  const ms = parseDurationMs(text);
  if (ms === undefined) throw new Error(`bad latency "${spec}": "${text}" is not a duration like "50ms"`);
  return ms;
}

/**
 * Parses a latency spec. Throws an Error naming the spec when it is malformed.
 * - `50ms` — fixed;
 * - `uniform:10ms-50ms` — uniform between the bounds;
 * - `normal:100ms,20ms` — normal with that mean and standard deviation, clamped at 0;
 * - `exp:20ms` — exponential with that mean (a long tail, like real services).
 */
export function parseLatency(spec: string): LatencySampler {
  const [kind, args] = spec.includes(':') ? (spec.split(':', 2) as [string, string]) : ['fixed', spec];
  switch (kind) {
    case 'fixed': {
      const ms = duration(args, spec);
      return () => ms;
    }
    case 'uniform': {
      const [low, high] = args.split('-').map((part) => duration(part, spec));
      if (low === undefined || high === undefined || high < low)
        throw new Error(`bad latency "${spec}": use uniform:LOW-HIGH`);
      return (random) => low + random() * (high - low);
    }
    case 'normal': {
      const [mean, stddev] = args.split(',').map((part) => duration(part, spec));
      if (mean === undefined || stddev === undefined)
        throw new Error(`bad latency "${spec}": use normal:MEAN,STDDEV`);
      return (random) => {
        // Box-Muller transform.
        const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
        return Math.max(0, mean + z * stddev);
      };
    }
    case 'exp': {
      const mean = duration(args, spec);
      return (random) => -Math.log(1 - random()) * mean;
    }
    default:
      throw new Error(`bad latency "${spec}": unknown kind "${kind}" (use fixed, uniform, normal or exp)`);
  }
}
