// What the dashboard costs the hot path: one proxied request's events, with the dashboard off, on with no page open, and watched.
//
//   node --import tsx bench/dashboard-events.ts [--json FILE]
//
// In one process, interleaved round after round, publishes the events a cached proxy request publishes
// (request start, cache lookup, attempt start and end, request end) the way the gateway does (build the
// message only when the channel has subscribers), with the gateway's metrics subscribed, in three states:
// the dashboard disabled; enabled with no page open (the always-on state board on its rare channels, the
// live counters built but not started); and a page open (the live counters subscribed). Reports the
// median CPU nanoseconds per request of each (CPU time, not wall time: other processes on a shared machine
// do not count) and their ratios, and what one frame a second costs to build.
import { writeFile } from 'node:fs/promises';
import { events, publish } from '../src/telemetry/events.js';
import { liveStats } from '../src/telemetry/live/live-stats.js';
import type { LiveSnapshot } from '../src/telemetry/live/live-stats.js';
import { stateBoard } from '../src/telemetry/live/state-board.js';
import type { StateBoard } from '../src/telemetry/live/state-board.js';
import { createMetrics } from '../src/telemetry/metrics.js';
import type { Call, RequestContext } from '../src/pipeline/types.js';

const REQUESTS = 200_000;
const ROUNDS = 11;
const ROUTES = Array.from({ length: 10 }, (_, i) => `route-${i}`);
const STATES = ['disabled', 'no page open', 'page open'] as const;
type State = (typeof STATES)[number];

const snapshot = (): LiveSnapshot => ({ breakers: [], mcp: undefined, llm: undefined, groups: [] });
const metrics = createMetrics({ processMetrics: false });
const live = liveStats({ snapshot });
let board: StateBoard | undefined;

function enter(state: State): void {
  if (state === 'disabled') {
    live.stop();
    board?.close();
    board = undefined;
    return;
  }
  board ??= stateBoard();
  if (state === 'page open') live.start();
  else live.stop();
}

/** CPU time this process has used, in ns: unlike wall time, it does not count time other processes ran. */
const cpuNs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
};

/** Publishes one cached proxy request's events `count` times; returns CPU ns per request. */
function requests(count: number): number {
  const headers = {};
  const started = cpuNs();
  for (let i = 0; i < count; i++) {
    const ctx: RequestContext = {
      id: 'r',
      route: ROUTES[i % ROUTES.length]!,
      startedAt: 0,
      upstreamMs: 0,
      attempts: 0,
    };
    const call = {
      ctx,
      upstream: 'emu',
      idempotent: true,
      principal: undefined,
      signal: undefined,
    } as unknown as Call;
    if (events.requestStart.hasSubscribers)
      publish(events.requestStart, { ctx, method: 'GET', path: '/', headers });
    if (events.cacheLookup.hasSubscribers) publish(events.cacheLookup, { route: ctx.route, result: 'miss' });
    if (events.attemptStart.hasSubscribers) publish(events.attemptStart, { call, headers });
    if (events.attemptEnd.hasSubscribers)
      publish(events.attemptEnd, {
        call,
        status: 200,
        errorCode: undefined,
        durationMs: 0.2 + (i % 7) * 0.01,
      });
    if (events.requestEnd.hasSubscribers)
      publish(events.requestEnd, {
        ctx,
        method: 'GET',
        path: '/',
        status: 200,
        errorCode: undefined,
        durationMs: 0.3 + (i % 13) * 0.01,
      });
  }
  return (cpuNs() - started) / count;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const samples: Record<State, number[]> = { disabled: [], 'no page open': [], 'page open': [] };
for (const state of STATES) {
  enter(state);
  requests(REQUESTS / 4); // warm up each path (JIT)
}
for (let round = 0; round < ROUNDS; round++) {
  for (const state of STATES) {
    enter(state);
    samples[state].push(requests(REQUESTS));
  }
}
// One frame a second while a page is open: build it and serialize it, as the feed does.
enter('page open');
requests(REQUESTS);
const frameStarted = cpuNs();
const FRAMES = 200;
for (let i = 0; i < FRAMES; i++) JSON.stringify(live.frame());
const frameUs = (cpuNs() - frameStarted) / FRAMES / 1000;
enter('disabled');
metrics.close();

const ns = Object.fromEntries(STATES.map((s) => [s, Math.round(median(samples[s]) * 10) / 10])) as Record<
  State,
  number
>;
const result = {
  scenario: 'dashboard-events',
  requests: REQUESTS,
  rounds: ROUNDS,
  nsPerRequest: ns,
  ratios: {
    noPageOpenOverDisabled: Math.round((ns['no page open'] / ns.disabled) * 1000) / 1000,
    pageOpenOverNoPageOpen: Math.round((ns['page open'] / ns['no page open']) * 1000) / 1000,
  },
  frameUs: Math.round(frameUs * 10) / 10,
  routes: ROUTES.length,
};
for (const state of STATES)
  process.stderr.write(`${state.padEnd(14)} ${ns[state]} CPU ns per request (median of ${ROUNDS})\n`);
process.stderr.write(
  `no page open / disabled ${result.ratios.noPageOpenOverDisabled}; page open / no page open ${result.ratios.pageOpenOverNoPageOpen}; ` +
    `one frame (${ROUTES.length} routes) ${result.frameUs} us a second\n`,
);
const jsonAt = process.argv.indexOf('--json');
if (jsonAt !== -1) await writeFile(process.argv[jsonAt + 1]!, `${JSON.stringify(result, null, 2)}\n`);
