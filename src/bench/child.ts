// Starts Slipstream CLI commands (emulators, gateways) as child processes, optionally pinned to one CPU.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ChildHandle {
  readonly child: ChildProcess;
  /** The `url` from the child's `"event":"listening"` line. */
  readonly url: string;
  /** That whole line, parsed (a gateway also reports `adminUrl`). */
  readonly listening: Record<string, unknown>;
  /** Everything the child wrote to stderr so far. */
  stderr(): string;
  /** Everything the child wrote to stdout so far (its log lines, the listening line included). */
  stdout(): string;
  /** Sends `signal` (default SIGTERM) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface ChildOptions {
  env?: NodeJS.ProcessEnv;
  /** Pin the child to this CPU with `taskset` (Linux); ignored where taskset is missing. */
  cpu?: number;
  /** How long to wait for the listening line. Default 15 s. */
  startTimeoutMs?: number;
  /** The Node binary that runs the CLI. Default this process's (`process.execPath`). */
  node?: string;
  /** `startGatewayChild`: the admin listener's port when the YAML sets none. Default 0 (any free port). */
  adminPort?: number;
  /** Another checkout's compiled CLI (`<dir>/bin/slipstream.js`) instead of this one: two builds in one bench. */
  cli?: string;
}

/** The command that runs the CLI: the compiled file when running compiled, else the TypeScript entry via tsx. */
export function cliCommand(node = process.execPath): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return [node, fileURLToPath(new URL('../cli/bin.js', import.meta.url))];
  return [node, '--import', 'tsx', fileURLToPath(new URL('../cli/bin.ts', import.meta.url))];
}

/**
 * Runs `slipstream <args>` and resolves once it prints its `{"event":"listening","url":...}` JSON line.
 * Rejects with the child's stderr if it exits or stays silent past the start timeout.
 */
export function startChild(args: readonly string[], options: ChildOptions = {}): Promise<ChildHandle> {
  let command =
    options.cli === undefined ? cliCommand(options.node) : [options.node ?? process.execPath, options.cli];
  if (options.cpu !== undefined && existsSync('/usr/bin/taskset')) {
    command = ['/usr/bin/taskset', '-c', String(options.cpu), ...command];
  }
  const child = spawn(command[0]!, [...command.slice(1), ...args], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  return new Promise<ChildHandle>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`slipstream ${args.join(' ')} did not start: ${stderr}`));
    }, options.startTimeoutMs ?? 15_000);
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (!line.includes('"event":"listening"')) continue;
        const listening = JSON.parse(line) as Record<string, unknown>;
        clearTimeout(timer);
        child.stdout.off('data', onData);
        child.stdout.resume(); // keep draining so the child never blocks on a full pipe
        resolve({
          child,
          url: String(listening.url),
          listening,
          stderr: () => stderr,
          stdout: () => stdout,
          stop: (signal = 'SIGTERM') => {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            return exited;
          },
        });
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`slipstream ${args.join(' ')} exited with ${code} before listening: ${stderr}`));
    });
  });
}

/**
 * Writes `yaml` to a temporary file and runs `slipstream serve` on it (listeners on 127.0.0.1 port 0 unless
 * the YAML sets them). The file is removed when the gateway stops.
 */
export async function startGatewayChild(yaml: string, options: ChildOptions = {}): Promise<ChildHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'slipstream-bench-'));
  const file = join(dir, 'slipstream.yaml');
  const listeners =
    // A load generator is one client address by design: the per-address connection cap must not bound it.
    (/^server:/m.test(yaml)
      ? ''
      : 'server: { listen: "127.0.0.1:0", limits: { maxConnectionsPerIp: 1000000 } }\n') +
    (/^admin:/m.test(yaml) ? '' : `admin: { listen: "127.0.0.1:${options.adminPort ?? 0}" }\n`) +
    (/^telemetry:/m.test(yaml) ? '' : 'telemetry: { log: { level: warn } }\n');
  await writeFile(file, listeners + yaml);
  try {
    const gateway = await startChild(['serve', '-c', file], options);
    return {
      ...gateway,
      stop: async (signal) => {
        const code = await gateway.stop(signal);
        await rm(dir, { recursive: true, force: true });
        return code;
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
