// Runs Slipstream CLI commands as real child processes for integration tests, and never leaks them.
import { spawn } from 'node:child_process';
import { request } from 'undici';
import type { EmulatorStats } from '../../emulators/http-upstream.js';
import { cliCommand, startChild, startGatewayChild } from '../../src/bench/child.js';
import type { ChildHandle, ChildOptions } from '../../src/bench/child.js';

export type CliProcess = ChildHandle;

const running = new Set<ChildHandle>();

/** Starts `slipstream <args>` and waits for its listening line. Stop it with `stop()` or `stopAll()`. */
export async function spawnCli(args: string[], options: ChildOptions = {}): Promise<CliProcess> {
  const child = await startChild(args, options);
  running.add(child);
  child.child.once('exit', () => running.delete(child));
  return child;
}

/**
 * Starts `slipstream serve` as a child process on `yaml` (upstreams, routes...; listeners on loopback port 0
 * unless the text sets them). Stop it with `stop()` or `stopAll()`.
 */
export async function spawnGateway(yaml: string, options: ChildOptions = {}): Promise<CliProcess> {
  const child = await startGatewayChild(yaml, options);
  running.add(child);
  child.child.once('exit', () => running.delete(child));
  return child;
}

/** Stops every child this test file started (for `afterAll`). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((child) => child.stop('SIGKILL')));
}

/** Runs a command that exits by itself; resolves with its exit code and output (`onStdout` sees it grow). */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  onStdout?: (stdout: string) => void,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [command, ...prefix] = cliCommand();
  const child = spawn(command!, [...prefix, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    onStdout?.(stdout);
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** Reads an emulator's counters over a fresh connection (which the emulator counts in `connections`). */
export async function emulatorStats<T = EmulatorStats>(url: string): Promise<T> {
  const response = await request(`${url}/__emulator/stats`, {
    headers: { connection: 'close' },
    reset: true,
  });
  return (await response.body.json()) as T;
}
