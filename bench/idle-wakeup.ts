// The floor under every "added latency" target: one TCP round trip between two processes, warm and after idle.
//
//   node --import tsx bench/idle-wakeup.ts [--json FILE]
//
// A client sends one byte to an echo server in another process and waits for it back, 300 times per
// setting: back to back, and after 1, 5 and 10 ms of idle (the gap between streamed tokens), with the two
// processes on one core and on two (taskset). On a VM whose idle vCPUs halt, the round trip after idle
// costs several times the warm one; every extra hop (any proxy) pays that wake-up on each message.
import { fork, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROUND_TRIPS = 300;
const PAUSES_MS = [0, 1, 5, 10];

interface Row {
  placement: 'same core' | 'two cores';
  pauseMs: number;
  p50Us: number;
  p90Us: number;
}

if (process.argv[2] === 'echo') {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (data) => socket.write(data));
  });
  server.listen(0, '127.0.0.1', () => process.send?.((server.address() as AddressInfo).port));
} else {
  await main();
}

async function main(): Promise<void> {
  const jsonAt = process.argv.indexOf('--json');
  const rows: Row[] = [];
  const pinnable = existsSync('/usr/bin/taskset');
  for (const placement of ['same core', 'two cores'] as const) {
    const clientCpu = 0;
    const echoCpu = placement === 'same core' ? 0 : 1;
    if (pinnable) pin(process.pid, clientCpu);
    const echo = fork(fileURLToPath(import.meta.url), ['echo'], { execArgv: process.execArgv });
    try {
      const port = await new Promise<number>((resolve) => echo.once('message', (p) => resolve(p as number)));
      if (pinnable) pin(echo.pid!, echoCpu);
      const socket = createConnection(port, '127.0.0.1');
      socket.setNoDelay(true);
      await new Promise((resolve) => socket.once('connect', resolve));
      for (const pauseMs of PAUSES_MS)
        rows.push({ placement, pauseMs, ...(await roundTrips(socket, pauseMs)) });
      socket.destroy();
    } finally {
      echo.kill();
    }
  }
  const result = { scenario: 'idle-wakeup', roundTrips: ROUND_TRIPS, pinned: pinnable, rows };
  for (const r of rows) {
    process.stderr.write(
      `${r.placement.padEnd(9)}  after ${String(r.pauseMs).padStart(2)} ms idle: p50 ${r.p50Us} us, p90 ${r.p90Us} us\n`,
    );
  }
  if (jsonAt !== -1 && process.argv[jsonAt + 1] !== undefined) {
    await writeFile(process.argv[jsonAt + 1]!, `${JSON.stringify(result, null, 2)}\n`);
  } else process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function roundTrips(socket: Socket, pauseMs: number): Promise<{ p50Us: number; p90Us: number }> {
  const us: number[] = [];
  for (let i = 0; i < ROUND_TRIPS; i++) {
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    const started = performance.now();
    socket.write('x');
    await new Promise((resolve) => socket.once('data', resolve));
    us.push((performance.now() - started) * 1000);
  }
  us.sort((a, b) => a - b);
  const at = (q: number) => Math.round(us[Math.floor(us.length * q)]!);
  return { p50Us: at(0.5), p90Us: at(0.9) };
}

/** Moves a running process (all its threads) to one CPU. */
function pin(pid: number, cpu: number): void {
  const { status } = spawnSync('/usr/bin/taskset', ['-a', '-p', '-c', String(cpu), String(pid)], {
    stdio: 'ignore',
  });
  if (status !== 0) process.stderr.write(`taskset failed for pid ${pid}\n`);
}
