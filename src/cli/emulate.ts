// `slipstream emulate http`: runs the configurable slow upstream from emulators/ as a real server.
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from 'commander';
import type { Command } from 'commander';
import { numberFlag } from '../../emulators/http-kit.js';
import type { HttpEmulatorOptions } from '../../emulators/http-upstream.js';
import { parseLatency } from '../../emulators/latency.js';
import type { LlmEmulatorOptions } from '../../emulators/llm.js';
import { specialistsOptionsFromFlags } from '../../emulators/specialists.js';
import type { SpecialistsFlags, SpecialistsOptions } from '../../emulators/specialists.js';
import { EXIT_CONFIG_INVALID } from './config-file.js';
// Each emulator is imported by its own command's action: `slipstream serve` never loads them.

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
  tlsCert?: string;
  tlsKey?: string;
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
    .option('--tls-cert <file>', 'serve HTTPS (HTTP/2 by ALPN, HTTP/1.1 fallback) with this PEM certificate')
    .option('--tls-key <file>', 'the PEM private key for --tls-cert')
    .action(async (flags: HttpFlags) => {
      let options: HttpEmulatorOptions;
      try {
        options = { ...toOptions(flags), tls: await readTls(flags) };
      } catch (error) {
        process.stderr.write(`slipstream emulate http: ${(error as Error).message}\n`);
        process.exitCode = EXIT_CONFIG_INVALID;
        return;
      }
      const { startHttpEmulator } = await import('../../emulators/http-upstream.js');
      const emulator = await startHttpEmulator(options);
      serveUntilSignal(emulator.url, () => emulator.close());
    });
  emulate
    .command('mcp')
    .description(
      'a stdio MCP server (2025-11-25 and 2026-07-28) with quote, business-API and fault tools, resources, prompts, completions, logging and sampling/elicitation/roots tools',
    )
    .option(
      '--latency <spec>',
      'latency of the quote and business tools',
      process.env.MCP_EMULATOR_LATENCY ?? '0ms',
    )
    .action(async (flags: { latency: string }) => {
      try {
        parseLatency(flags.latency);
      } catch (error) {
        process.stderr.write(`slipstream emulate mcp: ${(error as Error).message}\n`);
        process.exitCode = EXIT_CONFIG_INVALID;
        return;
      }
      // stdio: no listening line; stdout carries the protocol.
      const { runMcpEmulator } = await import('../../emulators/mcp-server.js');
      await runMcpEmulator({ latency: flags.latency });
    });
  emulate
    .command('llm')
    .description(
      'an LLM provider (chat completions, Responses, Anthropic Messages, embeddings) with pacing and faults',
    )
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'port (0 = any free port)', '0')
    .option('--ttft <spec>', 'time to first token (latency spec)', '0ms')
    .option('--gap <spec>', 'gap between tokens (latency spec)', '0ms')
    .option('--tokens <n>', 'tokens per completion', '16')
    .option('--errors <rate>', 'fraction of requests answered with --error-status (0..1)', '0')
    .option('--error-status <status>', 'status for injected errors (429, 500...)', '500')
    .option('--error-message <text>', 'message of injected errors (default: context length for 400)')
    .option('--retry-after <s>', 'send Retry-After (seconds) with injected errors')
    .option('--hang <rate>', 'fraction of requests never answered (0..1)', '0')
    .option('--hang-after <n>', 'stall every stream after this many tokens')
    .option('--api-key <key>', 'require this key (Bearer on OpenAI surfaces, x-api-key on Anthropic ones)')
    .option('--dimensions <n>', 'embedding length when a request sets none', '32')
    .action(async (flags: LlmFlags) => {
      let options: LlmEmulatorOptions;
      try {
        options = toLlmOptions(flags);
      } catch (error) {
        process.stderr.write(`slipstream emulate llm: ${(error as Error).message}\n`);
        process.exitCode = EXIT_CONFIG_INVALID;
        return;
      }
      const { startLlmEmulator } = await import('../../emulators/llm.js');
      const emulator = await startLlmEmulator(options);
      serveUntilSignal(emulator.url, () => emulator.close());
    });
  emulate
    .command('specialists')
    .description('seed 004: N AI specialists, one port each, some slow, hung or failing, plus GET /agents')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'control port: discovery and stats (0 = any free port)', '0')
    .option('--members <n>', 'number of specialists', '18')
    .option('--latency <spec>', 'latency of normal members (latency spec)', '100ms')
    .option('--hung <n>', 'members that never answer (the last ones)', '0')
    .option('--errors <n>', 'members that answer --error-status (before the hung ones)', '0')
    .option('--error-status <status>', 'status of erroring members', '500')
    .option('--slow <count:spec>', 'slow members, e.g. 1:400ms (repeatable)', collect, [])
    .option('--discovery-latency <spec>', 'latency of GET /agents', '0ms')
    .option('--discovery-fail', 'GET /agents answers 503')
    .action(async (flags: SpecialistsFlags) => {
      let options: SpecialistsOptions;
      try {
        options = specialistsOptionsFromFlags(flags);
      } catch (error) {
        process.stderr.write(`slipstream emulate specialists: ${(error as Error).message}\n`);
        process.exitCode = EXIT_CONFIG_INVALID;
        return;
      }
      const { startSpecialists } = await import('../../emulators/specialists.js');
      const team = await startSpecialists(options);
      serveUntilSignal(team.url, () => team.close());
    });
  emulate
    .command('quotes')
    .description("seed 003's market quotes: a slow per-symbol endpoint and a bulk endpoint")
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'port (0 = any free port)', '0')
    .option('--latency <spec>', 'latency of one call, single or bulk', 'uniform:300ms-600ms')
    .action(async (flags: { host: string; port: string; latency: string }) => {
      const { startQuotesEmulator } = await import('../../emulators/quotes.js');
      const emulator = await startSeedEmulator('quotes', () => {
        parseLatency(flags.latency);
        return startQuotesEmulator({ host: flags.host, port: portFlag(flags.port), latency: flags.latency });
      });
      if (emulator !== undefined) serveUntilSignal(emulator.url, () => emulator.close());
    });
  emulate
    .command('traces')
    .description("seed 002's trace store: a slow search, a flaky get-by-id, large span payloads")
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'port (0 = any free port)', '0')
    .option('--search-latency <spec>', 'latency of a search', 'uniform:150ms-240ms')
    .option('--get-latency <spec>', 'latency of a get-by-id or batch get', '20ms')
    .option('--get-errors <rate>', 'fraction of get-by-id calls failing with 503 (0..1)', '0.3')
    .option('--span-bytes <n>', 'span payload bytes per trace', '20000')
    .action(
      async (flags: {
        host: string;
        port: string;
        searchLatency: string;
        getLatency: string;
        getErrors: string;
        spanBytes: string;
      }) => {
        const { startTracesEmulator } = await import('../../emulators/traces.js');
        const emulator = await startSeedEmulator('traces', () => {
          parseLatency(flags.searchLatency);
          parseLatency(flags.getLatency);
          const getErrors = numberFlag(flags.getErrors, 'get-errors', 0, 1);
          const spanBytes = numberFlag(flags.spanBytes, 'span-bytes', 0, 64 * 1024 ** 2);
          return startTracesEmulator({
            host: flags.host,
            port: portFlag(flags.port),
            searchLatency: flags.searchLatency,
            getLatency: flags.getLatency,
            getErrors,
            spanBytes,
          });
        });
        if (emulator !== undefined) serveUntilSignal(emulator.url, () => emulator.close());
      },
    );
  emulate
    .command('bare-proxy')
    .description('a featureless reference proxy (node:http + undici), the floor benchmarks compare against')
    .requiredOption('--target <url>', 'upstream origin (loopback)')
    .option('--connections <n>', 'upstream pool size', connectionsFlag, 128)
    .action(async (flags: { target: string; connections: number }) => {
      const { startBareProxy } = await import('../../emulators/bare-proxy.js');
      const proxy = await startBareProxy(flags.target, flags.connections);
      serveUntilSignal(proxy.url, () => proxy.close());
    });
}

/** Reads `--tls-cert` and `--tls-key`, which go together. */
async function readTls(flags: HttpFlags): Promise<{ cert: string; key: string } | undefined> {
  if (flags.tlsCert === undefined && flags.tlsKey === undefined) return undefined;
  if (flags.tlsCert === undefined || flags.tlsKey === undefined) {
    throw new Error('--tls-cert and --tls-key go together');
  }
  const [cert, key] = await Promise.all([readFile(flags.tlsCert, 'utf8'), readFile(flags.tlsKey, 'utf8')]);
  return { cert, key };
}

/** Starts a seed emulator; a bad flag is printed and exits 2 (like a bad config), never a stack trace. */
async function startSeedEmulator<T>(name: string, start: () => Promise<T>): Promise<T | undefined> {
  try {
    return await start();
  } catch (error) {
    process.stderr.write(`slipstream emulate ${name}: ${(error as Error).message}\n`);
    process.exitCode = EXIT_CONFIG_INVALID;
    return undefined;
  }
}

function portFlag(text: string): number {
  return numberFlag(text, 'port', 0, 65535, true);
}

/** An option parser: commander prints an `InvalidArgumentError` as a one-line usage error (exit 1). */
function connectionsFlag(text: string): number {
  try {
    return numberFlag(text, 'connections', 1, 100_000, true);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
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
  parseLatency(flags.latency); // throws a clear message for a bad spec
  parseLatency(flags.tokenLatency);
  if ((flags.oauthClientId === undefined) !== (flags.oauthClientSecret === undefined)) {
    throw new Error('--oauth-client-id and --oauth-client-secret go together');
  }
  return {
    host: flags.host,
    port: numberFlag(flags.port, 'port', 0, 65535),
    latency: flags.latency,
    errorRate: numberFlag(flags.errors, 'errors', 0, 1),
    errorStatus: numberFlag(flags.errorStatus, 'error-status', 100, 599),
    retryAfterS:
      flags.retryAfter === undefined ? undefined : numberFlag(flags.retryAfter, 'retry-after', 0, 86_400),
    hangRate: numberFlag(flags.hang, 'hang', 0, 1),
    bodyBytes: numberFlag(flags.bodyBytes, 'body-bytes', 0, 256 * 1024 ** 2),
    tokenLatency: flags.tokenLatency,
    oauth:
      flags.oauthClientId === undefined
        ? undefined
        : {
            clientId: flags.oauthClientId,
            clientSecret: flags.oauthClientSecret!,
            tokenTtlS: numberFlag(flags.tokenTtl, 'token-ttl', 1, 86_400 * 365),
          },
  };
}

interface LlmFlags {
  host: string;
  port: string;
  ttft: string;
  gap: string;
  tokens: string;
  errors: string;
  errorStatus: string;
  errorMessage?: string;
  retryAfter?: string;
  hang: string;
  hangAfter?: string;
  apiKey?: string;
  dimensions: string;
}

function toLlmOptions(flags: LlmFlags): LlmEmulatorOptions {
  parseLatency(flags.ttft);
  parseLatency(flags.gap);
  return {
    host: flags.host,
    port: numberFlag(flags.port, 'port', 0, 65535),
    ttft: flags.ttft,
    gap: flags.gap,
    tokens: numberFlag(flags.tokens, 'tokens', 0, 1_000_000),
    errorRate: numberFlag(flags.errors, 'errors', 0, 1),
    errorStatus: numberFlag(flags.errorStatus, 'error-status', 100, 599),
    errorMessage: flags.errorMessage,
    retryAfterS:
      flags.retryAfter === undefined ? undefined : numberFlag(flags.retryAfter, 'retry-after', 0, 86_400),
    hangRate: numberFlag(flags.hang, 'hang', 0, 1),
    hangAfter:
      flags.hangAfter === undefined ? undefined : numberFlag(flags.hangAfter, 'hang-after', 0, 1_000_000),
    apiKey: flags.apiKey,
    dimensions: numberFlag(flags.dimensions, 'dimensions', 1, 4096, true),
  };
}

/** Commander reducer for repeatable options. */
function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
