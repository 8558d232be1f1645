// Seed 004's team of AI specialists: N small agents, each on its own port, some slow, hung or failing, plus discovery.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { parseLatency } from './latency.js';
import type { LatencySampler } from './latency.js';
import { answerConfig, collectBody, numberFlag, sendJson } from './http-kit.js';

/** How a specialist behaves: answers after its latency, never answers, or answers `errorStatus` after its latency. */
export type SpecialistMode = 'ok' | 'hung' | 'error';

export interface SpecialistsOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Port of the control server (discovery and stats); members always take free ports. Default 0. */
  port?: number;
  /** Number of specialists. Default 18. */
  members?: number;
  /** Latency spec (see `parseLatency`) of every member not listed in `slow`. Default "100ms". */
  latency?: string;
  /** The last `hung` members never answer (not even health probes). Default 0. */
  hung?: number;
  /** The `errors` members before the hung ones answer `errorStatus` after their latency. Default 0. */
  errors?: number;
  /** Status of erroring members. Default 500. */
  errorStatus?: number;
  /** Groups of slow members, taken before the erroring ones: `{ count: 1, latency: "400ms" }`. */
  slow?: Array<{ count: number; latency: string }>;
  /** Latency spec of `GET /agents`. Default "0ms". */
  discoveryLatency?: string;
  /** `GET /agents` answers 503 (a failing discovery service). Default false. */
  discoveryFail?: boolean;
  /** Largest chat body a member reads; bigger ones get 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Injectable random source for latency sampling. Default `Math.random`. */
  random?: () => number;
}

/** Counters of one specialist. */
export interface SpecialistStats {
  url: string;
  mode: SpecialistMode;
  latency: string;
  /** TCP connections accepted since start or reset. */
  connections: number;
  openConnections: number;
  /** Chat requests (POST), not health probes. */
  requests: number;
  /** Requests other than POST (OPTIONS, HEAD, GET): health probes and warm-ups. */
  probes: number;
  inFlight: number;
  maxInFlight: number;
  answered: number;
  errors: number;
  hangs: number;
  /** Requests the client gave up on (connection closed before the answer was sent). */
  aborted: number;
}

/** Counters served at `GET /__emulator/stats` on the control server. */
export interface SpecialistsStats {
  /** Sums over all members. */
  connections: number;
  openConnections: number;
  requests: number;
  inFlight: number;
  /** Most chat requests in flight at once across the whole team (N when a client calls all N in parallel). */
  maxInFlight: number;
  aborted: number;
  /** `GET /agents` requests. */
  discoveryRequests: number;
  members: Record<string, SpecialistStats>;
}

/** Per-member and discovery changes accepted by `POST /__emulator/config`. */
export interface SpecialistsPatch {
  members?: Record<string, { mode?: SpecialistMode; latency?: string }>;
  discovery?: { latency?: string; fail?: boolean };
}

export interface RunningSpecialists {
  /** The control server: `GET /agents`, `/__emulator/*`. */
  readonly url: string;
  /** Members in order, with their chat URLs. */
  readonly members: ReadonlyArray<{ name: string; url: string }>;
  stats(): SpecialistsStats;
  reset(): void;
  configure(patch: SpecialistsPatch): void;
  /** Ends hung requests, closes every socket and stops listening. */
  close(): Promise<void>;
}

interface Member {
  name: string;
  url: string;
  mode: SpecialistMode;
  latencySpec: string;
  latency: LatencySampler;
  server: Server;
  sockets: Set<Socket>;
  hung: Set<ServerResponse>;
  stats: Omit<SpecialistStats, 'url' | 'mode' | 'latency'>;
}

/** Member names: `specialist-01` ... (zero-padded so they sort). */
export function specialistName(index: number, total: number): string {
  return `specialist-${String(index + 1).padStart(Math.max(2, String(total).length), '0')}`;
}

/**
 * Starts the team. Each specialist listens on its own port (as in seed 004, where every AI had its own
 * host:port, so a client needs one connection pool per specialist) and answers `POST /chat` with
 * `{"ok":true,"agent","n","reply"}` after its latency; any other method is a health probe answered at once
 * (unless hung or erroring). The control server lists members at `GET /agents` (`{"members":[{name,url}]}`)
 * and serves `/__emulator/stats`, `/__emulator/reset` and `/__emulator/config` (a {@link SpecialistsPatch}).
 * Members are assigned from the end: the last `hung` hang, the `errors` before them fail, then the slow groups.
 * Throws on a bad latency spec or counts that exceed `members`.
 */
export async function startSpecialists(options: SpecialistsOptions = {}): Promise<RunningSpecialists> {
  const host = options.host ?? '127.0.0.1';
  const total = options.members ?? 18;
  const random = options.random ?? Math.random;
  const errorStatus = options.errorStatus ?? 500;
  const maxBodyBytes = options.maxBodyBytes ?? 1024 ** 2;
  const plan = assign(total, options);
  const discovery = {
    latency: parseLatency(options.discoveryLatency ?? '0ms'),
    fail: options.discoveryFail ?? false,
    requests: 0,
  };
  const zero = (): Member['stats'] => ({
    connections: 0,
    openConnections: 0,
    requests: 0,
    probes: 0,
    inFlight: 0,
    maxInFlight: 0,
    answered: 0,
    errors: 0,
    hangs: 0,
    aborted: 0,
  });

  const members: Member[] = [];
  /** Chat requests in flight across the team, and the peak (reset with the stats). */
  const team = { inFlight: 0, maxInFlight: 0 };
  const serve = (member: Member) => (req: IncomingMessage, res: ServerResponse) => {
    const s = member.stats;
    const isChat = req.method === 'POST';
    if (isChat) {
      s.requests++;
      team.maxInFlight = Math.max(team.maxInFlight, ++team.inFlight);
    } else s.probes++;
    s.inFlight++;
    s.maxInFlight = Math.max(s.maxInFlight, s.inFlight);
    res.once('close', () => {
      s.inFlight--;
      if (isChat) team.inFlight--;
      if (!res.writableFinished) s.aborted++;
    });
    if (member.mode === 'hung') {
      s.hangs++;
      member.hung.add(res);
      res.once('close', () => member.hung.delete(res));
      req.resume();
      return;
    }
    if (!isChat) {
      req.resume();
      if (member.mode === 'error') send(res, errorStatus, { ok: false, agent: member.name });
      else send(res, 200, { ok: true, agent: member.name });
      return;
    }
    collectBody(req, maxBodyBytes, (body) => {
      if (body === undefined) {
        send(res, 413, { ok: false, error: 'body too large' });
        return;
      }
      const n = s.requests;
      const timer = setTimeout(() => {
        if (member.mode === 'error') {
          s.errors++;
          send(res, errorStatus, { ok: false, agent: member.name, n });
          return;
        }
        s.answered++;
        send(res, 200, {
          ok: true,
          agent: member.name,
          n,
          reply: `${member.name} read ${body.length} bytes`,
          message: messageOf(body.toString()),
        });
      }, member.latency(random));
      res.once('close', () => clearTimeout(timer));
    });
  };

  try {
    for (const [index, spec] of plan.entries()) {
      const name = specialistName(index, total);
      const member: Member = {
        name,
        url: '',
        mode: spec.mode,
        latencySpec: spec.latency,
        latency: parseLatency(spec.latency),
        server: createServer({ keepAliveTimeout: 30_000 }),
        sockets: new Set(),
        hung: new Set(),
        stats: zero(),
      };
      member.server.on('request', serve(member));
      track(member.server, member.sockets, () => {
        member.stats.connections++;
        member.stats.openConnections++;
        return () => member.stats.openConnections--;
      });
      members.push(member);
      const port = await listen(member.server, host, 0);
      member.url = `${origin(host, port)}/chat`;
    }
  } catch (error) {
    await Promise.all(members.map((m) => closeServer(m.server, m.sockets, m.hung)));
    throw error;
  }

  const stats = (): SpecialistsStats => {
    const out: SpecialistsStats = {
      connections: 0,
      openConnections: 0,
      requests: 0,
      inFlight: 0,
      maxInFlight: team.maxInFlight,
      aborted: 0,
      discoveryRequests: discovery.requests,
      members: {},
    };
    for (const m of members) {
      out.connections += m.stats.connections;
      out.openConnections += m.stats.openConnections;
      out.requests += m.stats.requests;
      out.inFlight += m.stats.inFlight;
      out.aborted += m.stats.aborted;
      out.members[m.name] = { url: m.url, mode: m.mode, latency: m.latencySpec, ...m.stats };
    }
    return out;
  };
  const reset = () => {
    discovery.requests = 0;
    team.maxInFlight = team.inFlight;
    for (const m of members) {
      // In place: handlers of requests still open hold this object.
      Object.assign(m.stats, {
        ...zero(),
        openConnections: m.stats.openConnections,
        inFlight: m.stats.inFlight,
      });
    }
  };
  const configure = (patch: SpecialistsPatch) => {
    // Validate everything first so a bad patch changes nothing.
    const changes = Object.entries(patch.members ?? {}).map(([name, change]) => {
      const member = members.find((m) => m.name === name);
      if (member === undefined) throw new Error(`no member "${name}"`);
      if (change.mode !== undefined && !['ok', 'hung', 'error'].includes(change.mode))
        throw new Error(`mode must be ok, hung or error, got "${String(change.mode)}"`);
      const latency = change.latency === undefined ? undefined : parseLatency(change.latency);
      return { member, change, latency };
    });
    const discoveryLatency =
      patch.discovery?.latency === undefined ? undefined : parseLatency(patch.discovery.latency);
    for (const { member, change, latency } of changes) {
      if (change.mode !== undefined) {
        member.mode = change.mode;
        // A member that recovers answers what it was stuck on, as a restarted process would drop it.
        if (change.mode !== 'hung') for (const res of member.hung) res.destroy();
      }
      if (latency !== undefined) {
        member.latency = latency;
        member.latencySpec = change.latency!;
      }
    }
    if (discoveryLatency !== undefined) discovery.latency = discoveryLatency;
    if (patch.discovery?.fail !== undefined) discovery.fail = patch.discovery.fail;
  };

  const controlSockets = new Set<Socket>();
  const control = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      if (chunks.length < 64) chunks.push(chunk);
    });
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && path === '/agents') {
        discovery.requests++;
        const timer = setTimeout(() => {
          if (discovery.fail) send(res, 503, { error: 'discovery unavailable' });
          else send(res, 200, { members: members.map((m) => ({ name: m.name, url: m.url })) });
        }, discovery.latency(random));
        res.once('close', () => clearTimeout(timer));
        return;
      }
      if (req.method === 'GET' && path === '/__emulator/stats') return send(res, 200, stats());
      if (req.method === 'POST' && path === '/__emulator/reset') {
        reset();
        return send(res, 200, { ok: true });
      }
      if (req.method === 'POST' && path === '/__emulator/config') {
        return answerConfig(res, Buffer.concat(chunks).toString(), configure);
      }
      return send(res, 404, { error: `no emulator endpoint ${req.method} ${path}` });
    });
  });
  track(control, controlSockets, () => () => {});
  let controlPort: number;
  try {
    controlPort = await listen(control, host, options.port ?? 0);
  } catch (error) {
    await Promise.all(members.map((m) => closeServer(m.server, m.sockets, m.hung)));
    throw error;
  }

  return {
    url: origin(host, controlPort),
    members: members.map((m) => ({ name: m.name, url: m.url })),
    stats,
    reset,
    configure,
    close: async () => {
      await Promise.all([
        closeServer(control, controlSockets, new Set()),
        ...members.map((m) => closeServer(m.server, m.sockets, m.hung)),
      ]);
    },
  };
}

/** Each member's mode and latency spec, hung last, then erroring, then slow groups, the rest normal. */
function assign(
  total: number,
  options: SpecialistsOptions,
): Array<{ mode: SpecialistMode; latency: string }> {
  const latency = options.latency ?? '100ms';
  parseLatency(latency);
  const hung = options.hung ?? 0;
  const errors = options.errors ?? 0;
  const slow = options.slow ?? [];
  for (const group of slow) parseLatency(group.latency);
  const special = hung + errors + slow.reduce((sum, group) => sum + group.count, 0);
  if (!Number.isInteger(total) || total < 1 || total > 1000)
    throw new Error(`members must be an integer from 1 to 1000, got ${total}`);
  if (special > total) throw new Error(`hung + errors + slow (${special}) exceed members (${total})`);
  const plan = Array.from({ length: total }, (): { mode: SpecialistMode; latency: string } => ({
    mode: 'ok',
    latency,
  }));
  let at = total;
  for (let i = 0; i < hung; i++) plan[--at]!.mode = 'hung';
  for (let i = 0; i < errors; i++) plan[--at]!.mode = 'error';
  for (const group of slow) for (let i = 0; i < group.count; i++) plan[--at]!.latency = group.latency;
  return plan;
}

/**
 * Parses `--slow` values like `1:400ms` or `2:uniform:300ms-500ms` (COUNT:LATENCY) into slow groups.
 * Throws a message naming the bad value.
 */
export function parseSlow(values: readonly string[]): Array<{ count: number; latency: string }> {
  return values.map((value) => {
    const colon = value.indexOf(':');
    const count = Number(value.slice(0, colon));
    if (colon === -1 || !Number.isInteger(count) || count < 0)
      throw new Error(`bad --slow "${value}": use COUNT:LATENCY, e.g. 1:400ms`);
    const latency = value.slice(colon + 1);
    parseLatency(latency);
    return { count, latency };
  });
}

function messageOf(body: string): unknown {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    return typeof parsed === 'object' && parsed !== null ? parsed.message : undefined;
  } catch {
    return undefined;
  }
}

function track(server: Server, sockets: Set<Socket>, onOpen: () => () => void): void {
  server.on('connection', (socket: Socket) => {
    const onClose = onOpen();
    sockets.add(socket);
    socket.once('close', () => {
      onClose();
      sockets.delete(socket);
    });
  });
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

function origin(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function closeServer(server: Server, sockets: Set<Socket>, hung: Set<ServerResponse>): Promise<void> {
  return new Promise<void>((resolve) => {
    for (const res of hung) res.destroy();
    if (!server.listening) return resolve();
    server.close(() => resolve());
    for (const socket of sockets) socket.destroy();
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (!res.destroyed) sendJson(res, status, body);
}

/** `slipstream emulate specialists` flags, as commander hands them over (strings). */
export interface SpecialistsFlags {
  host: string;
  port: string;
  members: string;
  latency: string;
  hung: string;
  errors: string;
  errorStatus: string;
  slow: string[];
  discoveryLatency: string;
  discoveryFail?: boolean;
}

/** Turns CLI flags into options. Throws a message naming the bad flag. */
export function specialistsOptionsFromFlags(flags: SpecialistsFlags): SpecialistsOptions {
  const integer = (text: string, name: string, min: number, max: number) =>
    numberFlag(text, name, min, max, true);
  parseLatency(flags.latency);
  parseLatency(flags.discoveryLatency);
  return {
    host: flags.host,
    port: integer(flags.port, 'port', 0, 65535),
    members: integer(flags.members, 'members', 1, 1000),
    latency: flags.latency,
    hung: integer(flags.hung, 'hung', 0, 1000),
    errors: integer(flags.errors, 'errors', 0, 1000),
    errorStatus: integer(flags.errorStatus, 'error-status', 100, 599),
    slow: parseSlow(flags.slow),
    discoveryLatency: flags.discoveryLatency,
    discoveryFail: flags.discoveryFail ?? false,
  };
}
