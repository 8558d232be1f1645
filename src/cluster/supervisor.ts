// The `serve --workers N` supervisor (the cluster primary): keeps N workers serving, drains them, one admin listener.
import cluster from 'node:cluster';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { adminRoutes } from '../entrypoints/admin.js';
import type { AdminOptions } from '../entrypoints/admin.js';
import { GatewayError } from '../errors.js';
import { createListener } from '../server/listener.js';
import { Router } from '../server/router.js';
import { sqliteStore } from '../stores/sqlite.js';
import { ClusterMetrics } from './cluster-metrics.js';
import { isWorkerMessage } from './messages.js';
import { Questions } from './questions.js';
import type { MetricsSnapshot, StartMessage } from './messages.js';
import { RestartPolicy } from './restart-policy.js';
import { reusePortAvailable } from './reuse-port.js';

export interface SupervisorOptions {
  config: Config;
  /** The validated config text and its file: sent to every worker, so all serve the same config. */
  configText: string;
  configFile: string;
  /** HTTP workers to keep running (>= 2; one worker is a plain `serve`). */
  workers: number;
  logger: Logger;
}

export interface Supervisor {
  readonly url: string;
  readonly adminUrl: string;
  /** `round-robin` (the primary accepts and hands connections out) or `reuseport` (one socket per worker). */
  readonly balancing: 'round-robin' | 'reuseport';
  /**
   * Resolves with the exit code once every process stopped: 0 after a clean drain, 1 when a worker failed to
   * drain, a second signal forced the exit, or every worker ended up in a crash loop.
   */
  readonly done: Promise<number>;
}

/**
 * A group of identical processes the supervisor keeps running: today the HTTP workers. It is also where
 * processes that own a shared resource go (one owner process per stdio MCP pool, reached by the workers over
 * a local socket: `docs/deploy.md`): groups start in the order given, each one ready before the next starts,
 * and stop in reverse, so owners would come up before the workers that use them and go down after them.
 */
interface ProcessGroup {
  /** Names the group's processes in logs, `/admin/workers` and the `worker` metrics label. */
  label(index: number): string;
  readonly size: number;
  /** Forks process `index` (1..size). */
  fork(index: number): ChildProcess;
  /** What process `index` is sent when it says hello: everything it needs to start. */
  start(index: number): object;
  /** A process reported ready, with the URL it serves. */
  ready?(index: number, url: string): void;
  /** Its processes hold caches: `POST /admin/cache/purge` reaches each of them. */
  readonly caches: boolean;
}

type SlotState = 'starting' | 'ready' | 'backoff' | 'stopping' | 'stopped' | 'crash-loop';

/** One supervised process position: a process at a time, restarted in place. */
interface Slot {
  readonly group: ProcessGroup;
  readonly index: number;
  readonly label: string;
  readonly policy: RestartPolicy;
  child: ChildProcess | undefined;
  state: SlotState;
  /** `performance.now()` at the last fork. */
  forkedAt: number;
  restarts: number;
  timer: NodeJS.Timeout | undefined;
}

/** Longest wait for a worker's metrics during a scrape; past it, its last snapshot stands in. */
const SCRAPE_TIMEOUT_MS = 2_000;
/** Longest wait for a worker to confirm a cache purge. */
const PURGE_TIMEOUT_MS = 5_000;
/** How long past `server.shutdownGrace` a draining worker may take before it is killed. */
const DRAIN_MARGIN_MS = 10_000;

/**
 * Starts the supervisor in the cluster primary. It forks `workers` HTTP workers (`cluster/worker.ts`) that
 * share the data listener: where the runtime honours `reusePort` (detected, `cluster/reuse-port.ts`) each
 * worker binds its own `SO_REUSEPORT` socket and the kernel spreads connections; elsewhere (Node 20) the
 * primary holds the socket and hands connections out round-robin. Once every worker is ready it binds the
 * admin listener, which it serves itself for all of them: `/metrics` merges every worker's registry
 * (`ClusterMetrics`) with its own `slipstream_worker_*` metrics, `/readyz` is 200 while at least one worker
 * serves and the supervisor is not draining, a cache purge reaches every worker, `/admin/workers` lists
 * them. A worker that exits is restarted in place (`RestartPolicy`: backoff, and a crash loop is reported and
 * left down; when every worker is down that way the supervisor drains and exits 1). SIGTERM / SIGINT drain
 * every worker (each runs `Gateway.close()`), then the supervisor exits; a second signal kills them all.
 * Rejects when a worker cannot start (after killing the others).
 */
export async function startSupervisor(options: SupervisorOptions): Promise<Supervisor> {
  const { config, logger } = options;
  const balancing = (await reusePortAvailable(config.server.listen.host)) ? 'reuseport' : 'round-robin';
  logStartupNotes(config, options.workers, logger);
  prepareSharedFiles(config);
  const sessions = config.mcp === undefined ? undefined : sessionSockets(config);
  // Advanced serialization: a metric's value may be NaN or ±Infinity, which JSON would turn into null.
  cluster.setupPrimary({ serialization: 'advanced' });

  // A `port: 0` config under reusePort: the first worker picks the port, the others bind the same one.
  const pickPortFirst = balancing === 'reuseport' && config.server.listen.port === 0;
  let resolvedPort: number | undefined;
  const http: ProcessGroup = {
    label: (index) => String(index),
    size: options.workers,
    caches: true,
    fork: () => cluster.fork().process,
    start: (index): StartMessage => ({
      type: 'slipstream:start',
      worker: index,
      workers: options.workers,
      configText: options.configText,
      configFile: options.configFile,
      reusePort: balancing === 'reuseport',
      ...(resolvedPort === undefined ? {} : { port: resolvedPort }),
      ...(sessions === undefined ? {} : { sessions }),
    }),
    ready(_index, url) {
      if (pickPortFirst) resolvedPort ??= Number(new URL(url).port);
    },
  };

  const supervision = new Supervision(options, [http]);
  const onSignal = (signal: NodeJS.Signals) => supervision.signal(signal);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  let url: string;
  try {
    url = await supervision.start(pickPortFirst);
  } catch (error) {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    if (sessions !== undefined) rmSync(sessions.dir, { recursive: true, force: true });
    throw error;
  }
  const admin = createListener({
    router: new Router(adminRoutes(supervision.admin(balancing))),
    isDraining: () => false,
    overheadHeader: false,
    events: false,
  });
  const adminUrl = await admin.listen(config.admin.listen);
  logger.info({ url, adminUrl, workers: options.workers, balancing }, 'slipstream listening');
  const done = supervision.done.then(async (code) => {
    await admin.close(0);
    if (sessions !== undefined) rmSync(sessions.dir, { recursive: true, force: true });
    logger.info({ exitCode: code }, 'stopped');
    return code;
  });
  return { url, adminUrl, balancing, done };
}

/** The supervisor's state: its slots, their processes, the questions in flight, the shutdown. */
class Supervision {
  private readonly slots: Slot[];
  private readonly logger: Logger;
  private readonly questions = new Questions();
  private readonly merged = new ClusterMetrics();
  private readonly own: ReturnType<typeof ownMetrics>;
  private url: string | undefined;
  /** While starting: the slots being started, and how to report that they all serve or that one failed. */
  private startup: { batch: readonly Slot[]; resolve(): void; reject(error: Error): void } | undefined;
  private stopping = false;
  private exitCode = 0;
  private killTimer: NodeJS.Timeout | undefined;
  private finish: (code: number) => void = () => {};
  /** Resolves with the exit code once every process has stopped after a shutdown. */
  readonly done = new Promise<number>((resolve) => (this.finish = resolve));

  constructor(
    private readonly options: SupervisorOptions,
    private readonly groups: readonly ProcessGroup[],
  ) {
    this.logger = options.logger;
    this.slots = groups.flatMap((group) =>
      Array.from({ length: group.size }, (_, i) => ({
        group,
        index: i + 1,
        label: group.label(i + 1),
        policy: new RestartPolicy(),
        child: undefined,
        state: 'stopped',
        forkedAt: 0,
        restarts: 0,
        timer: undefined,
      })),
    );
    this.own = ownMetrics(this.slots);
  }

  /**
   * Starts every group, each ready before the next (with `firstAlone`, a group's first process before the
   * rest); resolves with the data listener's URL. On failure kills what started and rejects.
   */
  async start(firstAlone: boolean): Promise<string> {
    try {
      for (const group of this.groups) {
        const members = this.slots.filter((s) => s.group === group);
        const first = firstAlone ? members.slice(0, 1) : [];
        for (const batch of [first, members.slice(first.length)]) {
          if (batch.length === 0) continue;
          await new Promise<void>((resolve, reject) => {
            this.startup = { batch, resolve, reject };
            for (const slot of batch) this.fork(slot);
          });
        }
      }
    } catch (error) {
      this.stopping = true;
      for (const slot of this.slots) slot.child?.kill('SIGKILL');
      throw error;
    } finally {
      this.startup = undefined;
    }
    return this.url!;
  }

  /** SIGTERM / SIGINT: drain everything; a second one kills everything. */
  signal(signal: NodeJS.Signals): void {
    if (this.startup !== undefined) {
      this.startup.reject(new Error(`${signal} during start-up`));
      return;
    }
    if (!this.stopping) {
      this.shutdown(signal);
      return;
    }
    this.logger.warn({ signal }, 'second signal: killing every worker without draining');
    for (const slot of this.slots) slot.child?.kill('SIGKILL');
    process.exit(1);
  }

  /** What the admin listener serves for the whole cluster. */
  admin(balancing: Supervisor['balancing']): AdminOptions {
    return {
      token: this.options.config.admin.token,
      metrics: { contentType: this.own.registry.contentType, render: () => this.render() },
      isReady: () => !this.stopping && this.live().length > 0,
      purgeCache: (prefix) => this.purge(prefix),
      workers: () => ({
        balancing,
        workers: this.slots.map((s) => ({
          worker: s.label,
          pid: s.child?.pid ?? null,
          state: s.state,
          restarts: s.restarts,
        })),
      }),
    };
  }

  private live(): Slot[] {
    return this.slots.filter((s) => s.state === 'ready');
  }

  private fork(slot: Slot): void {
    slot.timer = undefined;
    slot.state = 'starting';
    slot.forkedAt = performance.now();
    const child = slot.group.fork(slot.index);
    slot.child = child;
    child.on('message', (message: unknown) => {
      if (!isWorkerMessage(message)) return;
      if (message.type === 'slipstream:answer') {
        this.questions.answered(message);
        return;
      }
      if (message.type === 'slipstream:hello') {
        if (slot.child === child && child.connected) child.send(slot.group.start(slot.index));
        return;
      }
      if (slot.child !== child || slot.state !== 'starting') return;
      slot.state = 'ready';
      this.url ??= message.url;
      slot.group.ready?.(slot.index, message.url);
      this.logger.info({ worker: slot.label, pid: child.pid }, 'worker ready');
      if (this.startup?.batch.every((s) => s.state === 'ready') === true) this.startup.resolve();
    });
    child.once('exit', (code, signal) => void this.exited(slot, child, code, signal));
  }

  private async exited(slot: Slot, child: ChildProcess, code: number | null, signal: string | null) {
    if (slot.child !== child) return;
    slot.child = undefined;
    const wasReady = slot.state === 'ready';
    this.questions.fail(child, `worker ${slot.label} exited`);
    await this.merged.retire(slot.label);
    const about = { worker: slot.label, pid: child.pid, code, signal };
    if (this.stopping) {
      slot.state = 'stopped';
      if (code !== 0) {
        this.logger.error(about, 'worker did not drain cleanly');
        this.exitCode = 1;
      }
      if (this.slots.every((s) => s.child === undefined)) this.finished();
      return;
    }
    if (this.startup !== undefined && !wasReady) {
      slot.state = 'stopped';
      this.startup.reject(
        new Error(
          `worker ${slot.label} exited (code ${code}, signal ${signal}) before it was ready: see its log`,
        ),
      );
      return;
    }
    const livedMs = Math.round(performance.now() - slot.forkedAt);
    const decision = slot.policy.exited(livedMs);
    if (!decision.restart) {
      slot.state = 'crash-loop';
      this.logger.error(
        { ...about, youngExits: decision.youngExits },
        'worker crash loop: it exited again soon after every restart; it stays down',
      );
      if (this.slots.every((s) => s.state === 'crash-loop')) {
        this.logger.error('every worker is in a crash loop: stopping');
        this.exitCode = 1;
        this.shutdown('crash-loop');
      }
      return;
    }
    slot.restarts++;
    this.own.restarted(slot.label);
    slot.state = 'backoff';
    this.logger.warn({ ...about, livedMs, restartInMs: decision.delayMs }, 'worker exited; restarting it');
    slot.timer = setTimeout(() => this.fork(slot), decision.delayMs);
  }

  private shutdown(reason: string): void {
    if (this.stopping) return;
    this.stopping = true;
    const graceMs = this.options.config.server.shutdownGrace;
    this.logger.info({ reason, graceMs }, 'draining every worker');
    for (const slot of this.slots) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
      slot.state = slot.child === undefined ? 'stopped' : 'stopping';
      slot.child?.kill('SIGTERM');
    }
    if (this.slots.every((s) => s.child === undefined)) {
      this.finished();
      return;
    }
    // A worker that outlives its own grace by far is stuck: kill it rather than wait forever.
    this.killTimer = setTimeout(() => {
      for (const slot of this.slots) {
        if (slot.child === undefined) continue;
        this.logger.error(
          { worker: slot.label, pid: slot.child.pid },
          'worker still running after the grace: killing it',
        );
        this.exitCode = 1;
        slot.child.kill('SIGKILL');
      }
    }, graceMs + DRAIN_MARGIN_MS);
  }

  private finished(): void {
    clearTimeout(this.killTimer);
    this.questions.fail(undefined, 'the supervisor is stopping');
    this.finish(this.exitCode);
  }

  /** Asks every serving worker for its metrics (a silent one is represented by its last snapshot) and merges. */
  private async render(): Promise<string> {
    await Promise.all(
      this.live().map(async (slot) => {
        const child = slot.child!;
        try {
          const snapshot = await this.questions.ask(
            child,
            (id) => ({ type: 'slipstream:metrics', id }),
            SCRAPE_TIMEOUT_MS,
          );
          if (slot.child === child) this.merged.update(slot.label, snapshot as MetricsSnapshot);
        } catch {
          this.own.scrapeTimedOut(slot.label);
        }
      }),
    );
    return this.merged.render(await this.own.registry.getMetricsAsJSON());
  }

  /** Purges every serving worker's cache; resolves with the sum of what they dropped. */
  private async purge(prefix: string): Promise<number> {
    const counts = await Promise.all(
      this.live()
        .filter((slot) => slot.group.caches)
        .map((slot) =>
          this.questions
            .ask(slot.child!, (id) => ({ type: 'slipstream:purge', id, prefix }), PURGE_TIMEOUT_MS)
            .catch((error: unknown) => {
              throw new GatewayError(
                'GW_WORKER_UNAVAILABLE',
                `worker ${slot.label} did not confirm the purge: ${String(error)}`,
                { cause: error },
              );
            }),
        ),
    );
    return counts.reduce<number>((sum, n) => sum + Number(n), 0);
  }
}

/** The supervisor's own metrics: which workers serve, how often each was restarted, scrapes they missed. */
function ownMetrics(slots: readonly Slot[]) {
  const registry = new Registry();
  const registers = [registry];
  const labelNames = ['worker'] as const;
  new Gauge({
    name: 'slipstream_worker_up',
    help: 'Whether the worker serves (1) or is starting, restarting, stopping or down in a crash loop (0).',
    labelNames,
    registers,
    collect() {
      for (const slot of slots) this.set({ worker: slot.label }, slot.state === 'ready' ? 1 : 0);
    },
  });
  const restarts = new Counter({
    name: 'slipstream_worker_restarts_total',
    help: 'Times the supervisor restarted a worker that exited.',
    labelNames,
    registers,
  });
  const timeouts = new Counter({
    name: 'slipstream_worker_scrape_timeouts_total',
    help: 'Scrapes a worker did not answer in time (its previous snapshot was served).',
    labelNames,
    registers,
  });
  for (const slot of slots) {
    restarts.inc({ worker: slot.label }, 0);
    timeouts.inc({ worker: slot.label }, 0);
  }
  return {
    registry,
    restarted: (worker: string) => restarts.inc({ worker }),
    scrapeTimedOut: (worker: string) => timeouts.inc({ worker }),
  };
}

/**
 * Where the workers reach each other's `/mcp` sessions: a fresh directory (mode 0700, so only this user
 * connects) under `$XDG_RUNTIME_DIR` (else the temp dir) holding one Unix socket per worker, and the key
 * signing session ids: the config's `mcp.sessionSecret`, or a random one for this run (ids then outlive
 * no restart of the supervisor, as sessions do not either).
 */
function sessionSockets(config: Config): { dir: string; secret: string } {
  const dir = mkdtempSync(join(process.env.XDG_RUNTIME_DIR ?? tmpdir(), 'slipstream-'));
  return { dir, secret: config.mcp?.sessionSecret ?? randomBytes(32).toString('base64url') };
}

/** One log line each for what N processes change: per-worker caches and buckets, MCP processes, `/mcp` sessions. */
function logStartupNotes(config: Config, workers: number, logger: Logger): void {
  if (config.cache.store === 'memory') {
    logger.warn(
      { workers, cacheStore: 'memory' },
      'cache.store is memory: each worker keeps its own cache and coalesces only its own misses ' +
        '(purges reach every worker), and its own rate-limit buckets (a limit admits up to N times its rate); ' +
        'set cache.store to tiered or redis to share them',
    );
  }
  const stdio = Object.entries(config.mcp?.servers ?? {}).filter(([, s]) => s.type === 'stdio');
  if (stdio.length > 0) {
    logger.warn(
      { workers, servers: stdio.map(([name]) => name) },
      'each worker runs its share of every stdio MCP pool (pool.min and pool.max divided among the workers, ' +
        'at least one process each), so the machine runs the configured size (docs/deploy.md)',
    );
  }
  if (config.mcp !== undefined) {
    logger.info(
      { workers },
      '/mcp sessions live in the worker that opened them: a request that reaches another worker is forwarded ' +
        'to it over a local Unix socket (one hop; docs/deploy.md)',
    );
  }
}

/**
 * Creates what workers share on disk before any of them starts. SQLite: the file, its WAL mode and its
 * schema, once, here; N workers doing it at the same moment race for the lock that changing the journal
 * mode takes, and the losers fail with "database is locked" (2 of 20 runs with 3 processes, measured).
 * Once the file exists, concurrent writers are safe: WAL admits one writer at a time, a busy write is
 * rolled back whole and the transcript writer retries it (`streams/transcript-buffer.ts`).
 */
function prepareSharedFiles(config: Config): void {
  const transcripts = config.llm?.transcripts;
  if (transcripts?.store !== 'sqlite') return;
  void sqliteStore({ path: transcripts.sqlite.path, busyTimeoutMs: 1_000 }).close();
}
