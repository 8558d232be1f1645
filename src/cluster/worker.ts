// A `serve --workers` worker: takes its config from the supervisor, serves the data plane, answers its questions.
import { parseConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { createGateway } from '../gateway.js';
import type { Gateway } from '../gateway.js';
import { createLogger } from '../telemetry/log.js';
import { isQuestion, isStart } from './messages.js';
import type { Answer, Question, StartMessage, WorkerMessage } from './messages.js';

/**
 * Runs this cluster worker until it is told to stop. It waits for the supervisor's start message (the
 * config text the supervisor validated, so a worker restarted later serves the same config even if the
 * file changed), builds its own gateway without the admin listener (the supervisor serves that once for
 * all), listens, and reports `ready`. SIGTERM or SIGINT drain it exactly as `Gateway.close()` does for one
 * process; a repeated signal is ignored here (a terminal's Ctrl-C reaches every process of the group, and
 * the supervisor forwards the first one too): forcing an exit is the supervisor's call. Resolves once it
 * serves; the process exits by itself once drained.
 */
export async function runWorker(): Promise<void> {
  let stop: ((signal: string) => void) | undefined = undefined;
  let exitEarly = true;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop !== undefined) stop(signal);
    else if (exitEarly) process.exit(0); // nothing started yet: nothing to drain
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const start = await startMessage();
  let config: Config;
  try {
    config = withPoolShare(withPort(parseConfig(start.configText, start.configFile), start.port), start);
  } catch (error) {
    // The supervisor validated this text; only a change in the environment makes it fail here.
    process.stderr.write(`worker ${start.worker}: ${String((error as Error).message)}\n`);
    process.exit(2);
  }
  const logger = createLogger({ level: config.telemetry.log.level }).child({ worker: start.worker });
  const gateway = await createGateway(config, {
    logger,
    worker: start.worker,
    admin: false,
    reusePort: start.reusePort,
    ...(start.sessions === undefined
      ? {}
      : { siblings: { count: start.workers, dir: start.sessions.dir, secret: start.sessions.secret } }),
  });
  const onMessage = (message: unknown) => {
    if (isQuestion(message)) void answer(gateway, message);
  };
  process.on('message', onMessage);

  exitEarly = false;
  const listening = gateway.listen();
  let stopping = false;
  stop = (signal) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, graceMs: config.server.shutdownGrace }, 'draining');
    listening
      .then(
        () => gateway.close(),
        () => gateway.close(),
      )
      .then(
        () => logger.info('stopped'),
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exitCode = 1;
        },
      )
      .finally(() => {
        process.off('message', onMessage);
        // Closing the channel lets the event loop empty: the process exits on its own, as one process does.
        if (process.connected) process.disconnect();
      });
  };

  let url: string;
  try {
    ({ url } = await listening);
  } catch (error) {
    if (stopping) return;
    logger.error({ err: error }, 'worker failed to start');
    process.exit(1);
  }
  send({ type: 'slipstream:ready', url });
}

/** Says hello to the supervisor and waits for its start message. */
function startMessage(): Promise<StartMessage> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown) => {
      if (!isStart(message)) return;
      process.off('message', onMessage);
      resolve(message);
    };
    process.on('message', onMessage);
    send({ type: 'slipstream:hello' });
  });
}

function withPort(config: Config, port: number | undefined): Config {
  if (port === undefined) return config;
  return { ...config, server: { ...config.server, listen: { ...config.server.listen, port } } };
}

/**
 * Gives this worker its share of every stdio MCP pool: `pool.min` and `pool.max` divided among the
 * workers (the first ones take the remainder), at least one process each. The machine then runs the
 * configured number of processes whatever N is (more only when `pool.max` is below N).
 */
export function withPoolShare(config: Config, start: Pick<StartMessage, 'worker' | 'workers'>): Config {
  if (config.mcp === undefined) return config;
  const share = (total: number) =>
    Math.max(1, Math.floor(total / start.workers) + (start.worker - 1 < total % start.workers ? 1 : 0));
  const servers = Object.fromEntries(
    Object.entries(config.mcp.servers).map(([name, server]) => [
      name,
      server.type === 'stdio'
        ? { ...server, pool: { ...server.pool, min: share(server.pool.min), max: share(server.pool.max) } }
        : server,
    ]),
  );
  return { ...config, mcp: { ...config.mcp, servers } };
}

async function answer(gateway: Gateway, question: Question): Promise<void> {
  let reply: Answer;
  try {
    const value =
      question.type === 'slipstream:metrics'
        ? await gateway.metrics.registry.getMetricsAsJSON()
        : await gateway.purgeCache(question.prefix);
    reply = { type: 'slipstream:answer', id: question.id, value };
  } catch (error) {
    reply = { type: 'slipstream:answer', id: question.id, error: String(error) };
  }
  send(reply);
}

function send(message: WorkerMessage): void {
  // The channel closes when the supervisor is gone; then Node's cluster module ends this process anyway.
  if (process.connected) process.send?.(message);
}
