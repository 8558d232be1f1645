// `slipstream emulate http`: runs the configurable slow upstream from emulators/ as a real server.
import type { Command } from 'commander';
import { startBareProxy } from '../../emulators/bare-proxy.js';
import { startHttpEmulator } from '../../emulators/http-upstream.js';
import type { HttpEmulatorOptions } from '../../emulators/http-upstream.js';
import { parseLatency } from '../../emulators/latency.js';
import { EXIT_CONFIG_INVALID } from './config-file.js';

interface HttpFlags {
  host: string;
  port: string;
  latency: string;
  errors: string;
  errorStatus: string;
  retryAfter?: string;
  hang: string;
  bodyBytes: string;
  oauthClientId?: string;
  oauthClientSecret?: string;
  tokenTtl: string;
  tokenLatency: string;
}

/** Registers `emulate http`. Prints one `{"event":"listening","url":...}` line, then serves until SIGTERM. */
export function registerEmulate(program: Command): void {
  const emulate = program
    .command('emulate')
    .description('run an emulated slow upstream for tests, benches and demos');
  emulate
    .command('http')
    .description('an HTTP upstream with configurable latency, errors, hangs, body size and OAuth2')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'port (0 = any free port)', '0')
    .option('--latency <spec>', 'latency: 50ms | uniform:10ms-50ms | normal:100ms,20ms | exp:20ms', '0ms')
    .option('--errors <rate>', 'fraction of requests answered with --error-status (0..1)', '0')
    .option('--error-status <status>', 'status for injected errors', '503')
    .option('--retry-after <s>', 'send Retry-After (seconds) with injected errors')
    .option('--hang <rate>', 'fraction of requests never answered (0..1)', '0')
    .option('--body-bytes <n>', 'approximate success body size', '64')
    .option('--oauth-client-id <id>', 'enable OAuth2 client credentials with this client id')
    .option('--oauth-client-secret <secret>', 'the client secret for --oauth-client-id')
    .option('--token-ttl <s>', 'access token lifetime in seconds', '3600')
    .option('--token-latency <spec>', 'latency of the token endpoint', '0ms')
    .action(async (flags: HttpFlags) => {
      let options: HttpEmulatorOptions;
      try {
        options = toOptions(flags);
      } catch (error) {
        process.stderr.write(`slipstream emulate http: ${(error as Error).message}\n`);
        process.exitCode = EXIT_CONFIG_INVALID;
        return;
      }
      const emulator = await startHttpEmulator(options);
      serveUntilSignal(emulator.url, () => emulator.close());
    });
  emulate
    .command('bare-proxy')
    .description('a featureless reference proxy (node:http + undici), the floor benchmarks compare against')
    .requiredOption('--target <url>', 'upstream origin (loopback)')
    .action(async (flags: { target: string }) => {
      const proxy = await startBareProxy(flags.target);
      serveUntilSignal(proxy.url, () => proxy.close());
    });
}

/** Prints the listening line, then closes on SIGTERM/SIGINT and exits 0. */
function serveUntilSignal(url: string, close: () => Promise<void>): void {
  process.stdout.write(`${JSON.stringify({ event: 'listening', url })}\n`);
  const stop = () => {
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

function toOptions(flags: HttpFlags): HttpEmulatorOptions {
  const number = (text: string, name: string, min: number, max: number) => {
    const value = Number(text);
    if (!Number.isFinite(value) || value < min || value > max) {
      throw new Error(`--${name} must be a number from ${min} to ${max}, got "${text}"`);
    }
    return value;
  };
  parseLatency(flags.latency); // throws a clear message for a bad spec
  parseLatency(flags.tokenLatency);
  if ((flags.oauthClientId === undefined) !== (flags.oauthClientSecret === undefined)) {
    throw new Error('--oauth-client-id and --oauth-client-secret go together');
  }
  return {
    host: flags.host,
    port: number(flags.port, 'port', 0, 65535),
    latency: flags.latency,
    errorRate: number(flags.errors, 'errors', 0, 1),
    errorStatus: number(flags.errorStatus, 'error-status', 100, 599),
    retryAfterS:
      flags.retryAfter === undefined ? undefined : number(flags.retryAfter, 'retry-after', 0, 86_400),
    hangRate: number(flags.hang, 'hang', 0, 1),
    bodyBytes: number(flags.bodyBytes, 'body-bytes', 0, 256 * 1024 ** 2),
    tokenLatency: flags.tokenLatency,
    oauth:
      flags.oauthClientId === undefined
        ? undefined
        : {
            clientId: flags.oauthClientId,
            clientSecret: flags.oauthClientSecret!,
            tokenTtlS: number(flags.tokenTtl, 'token-ttl', 1, 86_400 * 365),
          },
  };
}
