// CPU time a process has used, from /proc (Linux): what a code path costs, whatever else the machine runs.
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's utime and stime (`getconf CLK_TCK`: 100 on every Linux Node runs on). */
const TICKS_PER_S = 100;

/**
 * User plus system CPU time of process `pid` so far, in microseconds (10 ms resolution), or undefined where
 * /proc is missing. Unlike latency and throughput, CPU time spent per request barely moves when other
 * processes compete for the cores, so it shows small costs on a shared machine.
 */
export function processCpuUs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, inside parentheses): utime is the 14th, stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / TICKS_PER_S;
  } catch {
    return undefined;
  }
}
