// `slipstream serve`: runs the gateway (one process, or N workers under a supervisor) until SIGTERM/SIGINT, then drains.
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { startSupervisor } from '../cluster/supervisor.js';
import { runWorker } from '../cluster/worker.js';
import type { Config } from '../config/schema.js';
import { createGateway } from '../gateway.js';
import { createLogger } from '../telemetry/log.js';
import { EXIT_CONFIG_INVALID, loadConfigOrReport } from './config-file.js';

/** Most workers `--workers` accepts. */
const MAX_WORKERS = 256;

/** Registers `serve -c FILE [--workers N|auto]`. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the gateway')
    .option('-c, --config <file>', 'config file', 'slipstream.yaml')
    .option(
      '-w, --workers <n>',
      'HTTP worker processes sharing the listener: a number, or "auto" for one per core (docs/deploy.md)',
      '1',
    )
    .action(async (options: { config: string; workers: string }) => {
      // A cluster worker runs this same command line; the supervisor sends it the config.
      if (cluster.isWorker) return runWorker();
      const workers = parseWorkers(options.workers);
      if (workers === undefined) {
        process.stderr.write(
          `--workers: expected a number from 1 to ${MAX_WORKERS} or "auto", got "${options.workers}"\n`,
        );
        process.exitCode = EXIT_CONFIG_INVALID;
        return;
      }
      const loaded = await loadConfigOrReport(options.config);
      if (loaded === undefined) return;
      if (workers === 1) return serveOne(loaded.config);
      await serveMany(loaded.config, loaded.text, options.config, workers);
    });
}

/** `--workers`: a whole number of workers, or `auto` (the cores this process may use). */
export function parseWorkers(value: string): number | undefined {
  if (value === 'auto') return Math.min(MAX_WORKERS, availableParallelism());
  if (!/^\d+$/.test(value)) return undefined;
  const n = Number(value);
  return n >= 1 && n <= MAX_WORKERS ? n : undefined;
}

/** Always printed, whatever the log level: scripts and tests wait for this line. */
function announce(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ event: 'listening', ...fields })}\n`);
}

/** One process: the gateway itself. A second signal exits without draining. */
async function serveOne(config: Config): Promise<void> {
  const gateway = await createGateway(config);
  let bound: Awaited<ReturnType<typeof gateway.listen>>;
  try {
    bound = await gateway.listen();
  } catch (error) {
    // One JSON line a log pipeline can read (a port in use, say), not a stack trace on stderr.
    gateway.logger.fatal({ err: error }, 'slipstream could not start');
    await gateway.close().catch(() => {});
    process.exitCode = 1;
    return;
  }
  const { url, adminUrl } = bound;
  announce({ url, adminUrl });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      gateway.logger.warn({ signal }, 'second signal: exiting without draining');
      process.exit(1);
    }
    stopping = true;
    gateway.logger.info({ signal, graceMs: config.server.shutdownGrace }, 'draining');
    gateway.close().then(
      () => gateway.logger.info('stopped'),
      (error: unknown) => {
        gateway.logger.error({ err: error }, 'shutdown failed');
        process.exitCode = 1;
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

/** N workers under a supervisor (this process, the cluster primary); exits with the supervisor's code. */
async function serveMany(config: Config, text: string, file: string, workers: number): Promise<void> {
  const logger = createLogger({ level: config.telemetry.log.level }).child({ role: 'supervisor' });
  const cores = availableParallelism();
  if (workers > cores) {
    logger.warn(
      { workers, cores },
      'more workers than cores: they take turns on the CPU instead of adding to it',
    );
  }
  let supervisor;
  try {
    supervisor = await startSupervisor({ config, configText: text, configFile: file, workers, logger });
  } catch (error) {
    logger.error({ err: error }, 'start-up failed');
    process.exitCode = 1;
    return;
  }
  announce({
    url: supervisor.url,
    adminUrl: supervisor.adminUrl,
    workers,
    balancing: supervisor.balancing,
  });
  process.exitCode = await supervisor.done;
}
