import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ConfigError, formatProblem, loadConfig, parseConfig } from '../../src/config/load.js';

const FILE = 'slipstream.yaml';

function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(text, FILE, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems.map(formatProblem);
  }
  throw new Error('config unexpectedly valid');
}

const MINIMAL = `upstreams:
  api: { url: "http://127.0.0.1:9000" }
routes:
  - match: { prefix: /api }
    upstream: api
`;

describe('config loading', () => {
  it('fills defaults and parses units for a minimal file', () => {
    const config = parseConfig(MINIMAL, FILE, {});
    // Secure by default (issue 15): the data plane binds loopback unless told otherwise.
    expect(config.server.listen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(config.admin.listen).toEqual({ host: '127.0.0.1', port: 9090 });
    const route = config.routes[0]!;
    expect(route.timeout).toBe(30_000);
    expect(route.retry).toMatchObject({ attempts: 3, budget: { ratio: 0.2, minConcurrent: 3 } });
    expect(route.breaker).toMatchObject({ mode: 'consecutive', threshold: 5 });
    expect(config.upstreams.api!.pool).toMatchObject({ connections: 128, pipelining: 1, http2: false });
  });

  it('parses durations and sizes with units', () => {
    const config = parseConfig(
      `${MINIMAL}    timeout: 1.5s\n    maxRequestBytes: 64kb\n    retry: { baseDelay: 800us, maxDelay: 2m }\n`,
      FILE,
      {},
    );
    const route = config.routes[0]!;
    expect(route.timeout).toBe(1500);
    expect(route.maxRequestBytes).toBe(65_536);
    expect(route.retry !== false && route.retry.baseDelay).toBe(0.8);
    expect(route.retry !== false && route.retry.maxDelay).toBe(120_000);
  });

  it('interpolates ${VAR} and ${VAR:-default}, typing bare numbers', () => {
    const text = `server:
  listen:
    port: \${PORT:-8123}
upstreams:
  api:
    url: \${API_URL}
    headers: { x-api-key: "key-\${KEY:-none}" }
`;
    const config = parseConfig(text, FILE, { API_URL: 'http://127.0.0.1:7000', KEY: 's3cret' });
    expect(config.server.listen.port).toBe(8123);
    expect(config.upstreams.api!.url).toBe('http://127.0.0.1:7000');
    expect(config.upstreams.api!.headers['x-api-key']).toBe('key-s3cret');
  });

  it('names the file, line and column of a missing environment variable', () => {
    expect(problems(`upstreams:\n  api:\n    url: \${API_URL}\n`)).toEqual([
      'slipstream.yaml:3:10 upstreams.api.url: environment variable API_URL is not set',
    ]);
  });

  it('points at a YAML syntax error', () => {
    const [first] = problems(`upstreams:\n  api: { url: "http://x"\n  other: 1\n`);
    expect(first).toMatch(/^slipstream\.yaml:3:\d+ /);
  });

  it('points at an unknown key (a typo) rather than its parent', () => {
    expect(
      problems(`upstreams:\n  api:\n    url: http://127.0.0.1:1\n    pool: { conections: 2 }\n`),
    ).toEqual(['slipstream.yaml:4:13 upstreams.api.pool: unknown key "conections"']);
  });

  it('explains a bad duration at the value', () => {
    expect(problems(`${MINIMAL}    retry: { attempts: 3, baseDelay: 5 seconds }\n`)).toEqual([
      'slipstream.yaml:6:38 routes[0].retry.baseDelay: expected a duration like "250ms" or "5s"',
    ]);
  });

  it('rejects a route that names an unknown upstream, listing the known ones', () => {
    expect(
      problems(
        `upstreams:\n  api: { url: "http://127.0.0.1:1" }\nroutes:\n  - match: { prefix: /x }\n    upstream: apj\n`,
      ),
    ).toEqual(['slipstream.yaml:5:15 routes[0].upstream: unknown upstream "apj" (known: api)']);
  });

  it('rejects a non-http URL, an out-of-range port and a prefix without a slash', () => {
    const found = problems(`server: { listen: 70000 }
upstreams:
  api: { url: "ftp://127.0.0.1" }
routes:
  - match: { prefix: api }
    upstream: api
`);
    expect(found).toEqual([
      'slipstream.yaml:1:19 server.listen: Too big: expected number to be <=65535',
      'slipstream.yaml:3:15 upstreams.api.url: expected an http:// or https:// URL',
      'slipstream.yaml:5:22 routes[0].match.prefix: must start with "/"',
    ]);
  });

  it('reports a required key that is missing at the map that should hold it', () => {
    expect(problems(`upstreams:\n  api: { pool: { connections: 2 } }\n`)).toEqual([
      'slipstream.yaml:2:8 upstreams.api.url: required key is missing',
    ]);
  });

  it('refuses an admin listener beyond loopback without a token', () => {
    expect(problems(`${MINIMAL}admin: { listen: "0.0.0.0:9090" }\n`)).toEqual([
      'slipstream.yaml:6:18 admin.listen: the admin listener is bound beyond loopback; set admin.token or bind it to 127.0.0.1',
    ]);
    const withToken = parseConfig(
      `${MINIMAL}admin: { listen: "0.0.0.0:9090", token: "0123456789abcdef" }\n`,
      FILE,
      {},
    );
    expect(withToken.admin.listen.host).toBe('0.0.0.0');
  });

  it('reports a file that does not exist', async () => {
    await expect(loadConfig('/nonexistent/slipstream.yaml')).rejects.toThrow(
      '/nonexistent/slipstream.yaml:1:1 file not found',
    );
  });

  it('accepts the documented example config', async () => {
    const config = await loadConfig('slipstream.example.yaml', {});
    expect(config.routes[0]).toMatchObject({ name: 'api', upstream: 'api', rewrite: '/v1', timeout: 10_000 });
    expect(config.upstreams.api!.headers['x-api-key']).toBe('dev-key');
  });

  it('points at a shared cache store with no Redis URL, and at a bad Redis URL', () => {
    expect(problems(`cache: { store: tiered }\n${MINIMAL}`)).toEqual([
      'slipstream.yaml:1:17 cache.store: store "tiered" needs cache.redis.url',
    ]);
    expect(problems(`cache: { store: redis, redis: { url: "http://x" } }\n${MINIMAL}`)).toEqual([
      'slipstream.yaml:1:38 cache.redis.url: expected a redis:// or rediss:// URL',
    ]);
  });

  it('refuses a transcript query timeout that would turn the timeouts off, at its value', () => {
    const llm = `upstreams: {}\nllm:\n  providers: { emu: { baseUrl: "http://127.0.0.1:1/v1", models: { m: x } } }\n  transcripts:\n    store: postgres\n`;
    expect(problems(`${llm}    postgres: { url: "postgres://h/db", queryTimeout: 0 }\n`)).toEqual([
      'slipstream.yaml:6:55 llm.transcripts.postgres.queryTimeout: at least 100ms: 0 would turn the timeouts off, a hung database would stop every write',
    ]);
    expect(
      parseConfig(`${llm}    postgres: { url: "postgres://h/db" }\n`, FILE, {}).llm?.transcripts?.postgres
        .queryTimeout,
    ).toBe(5_000);
  });

  it('checks a batch declaration: one item parameter, ids in a GET bulk path', () => {
    const route = (batch: string) => `${MINIMAL}    batch: ${batch}\n`;
    expect(problems(route('{ item: /quote, bulk: { path: "/quotes?s={ids}" } }'))).toEqual([
      'slipstream.yaml:6:20 routes[0].batch.item: needs exactly one ":param" segment for the item id',
    ]);
    expect(problems(route('{ item: /quote/:s, bulk: { path: "/quotes" } }'))).toEqual([
      'slipstream.yaml:6:45 routes[0].batch.bulk.path: a GET bulk path needs "{ids}" where the item ids go',
    ]);
    const config = parseConfig(
      route('{ item: /quote/:s, bulk: { path: "/quotes?s={ids}" }, window: 5ms }'),
      FILE,
      {},
    );
    expect(config.routes[0]!.batch).toMatchObject({
      window: 5,
      maxBatch: 100,
      bulk: { method: 'GET', separator: ',' },
    });
  });

  it('names an unreadable TLS CA file where it is configured', () => {
    const text = `upstreams:\n  api: { url: "https://127.0.0.1:9443", tls: { ca: /nonexistent/ca.pem } }\n`;
    expect(problems(text)).toEqual([
      'slipstream.yaml:2:52 upstreams.api.tls.ca: cannot read CA file "/nonexistent/ca.pem" (ENOENT)',
    ]);
  });

  it('refuses zstd where the runtime lacks it, and compressed media types, naming the place', () => {
    const route = (compression: string) => `${MINIMAL}    compression: ${compression}\n`;
    const zstd = route('{ codings: [zstd, gzip] }');
    if ('zstdCompress' in zlib) {
      expect(parseConfig(zstd, FILE, {}).routes[0]!.compression).toEqual({ codings: ['zstd', 'gzip'] });
    } else {
      expect(problems(zstd)).toEqual([
        `slipstream.yaml:6:30 routes[0].compression.codings[0]: zstd needs Node 22.15 or later (this is ${process.version}); use br or gzip`,
      ]);
    }
    expect(problems(route('{ types: [image/png] }'))).toEqual([
      'slipstream.yaml:6:28 routes[0].compression.types[0]: this media type is compressed already',
    ]);
    const config = parseConfig(route('{ minBytes: 4kb }'), FILE, {});
    expect(config.routes[0]!.compression).toEqual({ minBytes: 4096 });
    expect(config.compression).toMatchObject({
      minBytes: 1024,
      brotliQuality: 4,
      streams: false,
      endpoints: false,
    });
  });

  it('checks warm keys: shared scope, under the prefix, a cached method', () => {
    const route = (cache: string) => `${MINIMAL}    cache: ${cache}\n`;
    expect(problems(route('{ ttl: 5s, warm: { requests: [/api/movers] } }'))).toEqual([
      'slipstream.yaml:6:29 routes[0].cache.warm: warm keys need "scope: shared" (a warm entry belongs to no caller)',
    ]);
    expect(
      problems(
        route('{ ttl: 5s, scope: shared, warm: { requests: [/other, { path: /api/x, method: POST }] } }'),
      ),
    ).toEqual([
      'slipstream.yaml:6:57 routes[0].cache.warm.requests[0]: "/other" is not under the route prefix "/api"',
      'slipstream.yaml:6:65 routes[0].cache.warm.requests[1]: the route does not cache POST',
    ]);
    const config = parseConfig(
      route('{ ttl: 5s, scope: shared, refreshAhead: 0.8, warm: { requests: ["/api/m?x=1"] } }'),
      FILE,
      {},
    );
    expect(config.routes[0]!.cache).toMatchObject({
      refreshAhead: 0.8,
      warm: { jitter: 0.1, requests: ['/api/m?x=1'] },
    });
    expect(problems(route('{ ttl: 5s, refreshAhead: 1 }'))[0]).toMatch(/routes\[0\]\.cache\.refreshAhead/);
  });

  it('checks /mcp sessions across replicas: a secret needs an advertised address that is a replica', () => {
    const replicas = (server: string, mcp: string) =>
      `server: ${server}\nupstreams: {}\nmcp:\n  servers: {}\n${mcp}`;
    const secret = '  sessionSecret: ${MCP_SECRET}\n';
    const env = { MCP_SECRET: 'k'.repeat(32) };
    const config = parseConfig(
      replicas('{ advertise: "10.0.0.1:8080", replicas: ["10.0.0.1:8080", "10.0.0.2:8080"] }', secret),
      FILE,
      env,
    );
    expect(config.mcp?.sessionSecret).toBe('k'.repeat(32));
    expect(config.server.replicas).toEqual(['10.0.0.1:8080', '10.0.0.2:8080']);
    expect(problems(replicas('{}', secret), env)).toEqual([
      "slipstream.yaml:5:18 mcp.sessionSecret: needs server.advertise (this replica's address, named in its session ids)",
    ]);
    expect(problems(replicas('{ replicas: ["10.0.0.1:8080"] }', ''))).toEqual([
      'slipstream.yaml:1:21 server.replicas: needs mcp.sessionSecret (the key that signs /mcp session ids, shared by every replica)',
    ]);
    expect(
      problems(replicas('{ advertise: "10.0.0.3:8080", replicas: ["10.0.0.1:8080"] }', secret), env),
    ).toEqual([
      'slipstream.yaml:1:22 server.advertise: "10.0.0.3:8080" is not in server.replicas: the other replicas would refuse its sessions',
    ]);
    expect(problems(replicas('{ advertise: "http://x" }', secret), env)[0]).toMatch(
      /server\.advertise: expected "host:port"/,
    );
    expect(problems(replicas('{ advertise: "10.0.0.1:8080" }', secret), { MCP_SECRET: 'short' })[0]).toMatch(
      /mcp\.sessionSecret: a session secret must be at least 32 characters/,
    );
  });
});
