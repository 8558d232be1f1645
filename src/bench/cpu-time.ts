// CPU time a process has used, read from Linux's /proc: what a benchmark divides by requests served.
import { readFileSync } from 'node:fs';

/** Linux reports /proc times in USER_HZ ticks, 100 per second on every architecture it runs on. */
const TICKS_PER_S = 100;

/**
 * CPU time (user + system) process `pid` has used so far, in ms (10 ms resolution), from
 * `/proc/<pid>/stat` (fields 14 and 15, `utime` and `stime`). Undefined off Linux, once the process is gone,
 * or without a pid (a child that never started).
 */
export function cpuTimeMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis (field 3 first).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? (ticks * 1_000) / TICKS_PER_S : undefined;
}
