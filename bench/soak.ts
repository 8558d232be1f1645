// Resident memory over a long run at a bounded rate: does the gateway hold steady, or grow?
//
//   npm run build && node --import tsx bench/soak.ts [--minutes 10] [--rate 300] [--json FILE]
//
// Runs the example config (slipstream.example.yaml: its proxy route, cache and limits) in front of the
// HTTP emulator, sends `--rate` GETs a second (open loop) over 500 distinct paths, so the cache fills
// once and then only turns over, and reads the gateway's RSS from /proc every 5 s. RSS saws up and down
// with the garbage collector (tens of MB between major GCs), so it reports medians: minutes 1-3 (warm:
// pools, JIT, cache full) against the last two minutes, their ratio, and the range seen.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startChild } from '../src/bench/child.js';
import type { ChildHandle } from '../src/bench/child.js';
import { httpTask } from '../src/bench/http-task.js';
import { runLoad } from '../src/bench/load.js';

const SAMPLE_MS = 5_000;
const PATHS = 500;

function argument(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : process.argv[at + 1]!;
}

/** Resident set size of `pid` in MB (VmRSS), or undefined when /proc cannot tell. */
function rssMb(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    return line === null ? undefined : Math.round(Number(line[1]) / 102.4) / 10;
  } catch {
    return undefined;
  }
}

function median(samples: ReadonlyArray<{ rssMb: number }>): number {
  const sorted = samples.map((s) => s.rssMb).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? sorted[mid]!
    : Math.round(((sorted[mid - 1]! + sorted[mid]!) / 2) * 10) / 10;
}

async function main(): Promise<void> {
  const minutes = Number(argument('--minutes', '10'));
  const ratePerS = Number(argument('--rate', '300'));
  const here = fileURLToPath(new URL('..', import.meta.url));
  const dir = await mkdtemp(join(tmpdir(), 'slipstream-soak-'));
  const children: ChildHandle[] = [];
  try {
    // The compiled CLI (`npm run build`): memory through tsx would include the TypeScript compiler's.
    const cli = join(here, 'bin/slipstream.js');
    const upstream = await startChild(['emulate', 'http', '--latency', '1ms', '--body-bytes', '512'], {
      cli,
    });
    children.push(upstream);
    const config = join(dir, 'slipstream.yaml');
    const example = readFileSync(join(here, 'slipstream.example.yaml'), 'utf8').replace(
      'listen: 127.0.0.1:9090',
      'listen: 127.0.0.1:0',
    );
    await writeFile(config, example);
    const gateway = await startChild(['serve', '-c', config], {
      env: { SLIPSTREAM_LISTEN: '127.0.0.1:0', API_URL: upstream.url },
      cli,
    });
    children.push(gateway);
    const pid = gateway.child.pid!;
    const samples: Array<{ atS: number; rssMb: number }> = [];
    const started = performance.now();
    const sampler = setInterval(() => {
      const rss = rssMb(pid);
      if (rss !== undefined)
        samples.push({ atS: Math.round((performance.now() - started) / 1000), rssMb: rss });
    }, SAMPLE_MS);
    const idleRssMb = rssMb(pid);
    const http = httpTask(gateway.url, (i) => ({ path: `/api/item/${i % PATHS}` }), { connections: 16 });
    const result = await runLoad({
      task: http.task,
      mode: { kind: 'open', ratePerS },
      durationMs: minutes * 60_000,
    });
    clearInterval(sampler);
    await http.close();
    const endS = minutes * 60;
    const warm = median(samples.filter((s) => s.atS >= 60 && s.atS < 180));
    const end = median(samples.filter((s) => s.atS >= endS - 120));
    const summary = {
      minutes,
      ratePerS,
      requests: result.requests,
      ok: result.ok,
      errors: result.errors,
      idleRssMb,
      warmMedianRssMb: warm,
      endMedianRssMb: end,
      endOverWarm: Math.round((end / warm) * 1000) / 1000,
      minRssMb: Math.min(...samples.map((s) => s.rssMb)),
      maxRssMb: Math.max(...samples.map((s) => s.rssMb)),
    };
    console.log(JSON.stringify(summary, null, 2));
    const json = argument('--json', '');
    if (json !== '') await writeFile(json, JSON.stringify({ ...summary, samples }, null, 2));
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
