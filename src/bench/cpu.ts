// CPU time of another process (a gateway child), from /proc: what a feature costs, measured beside its latency.
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ: 100 on every Linux we run on). */
const TICKS_PER_S = 100;

/**
 * User plus system CPU time `pid` has used, in ms (10 ms resolution), or undefined where /proc is not
 * there (not Linux) or the process is gone.
 */
export function cpuTimeMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, inside parentheses): utime is the 14th field.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? (ticks * 1000) / TICKS_PER_S : undefined;
  } catch {
    return undefined;
  }
}
