// The smallest useful Node proxy (node:http + one undici Pool, end-to-end headers and bodies piped): the floor any Node gateway pays.
import { createServer } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

/** Connection-level request headers, which a proxy does not forward. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'host',
  'te',
  'trailer',
]);

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

export interface BareProxy {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Forwards every request to `target` with no routing, policies or telemetry. Benchmarks run it beside
 * Slipstream so that "added latency" can be split into what the extra hop costs on this machine and
 * what Slipstream itself costs.
 */
export async function startBareProxy(target: string, connections = 128): Promise<BareProxy> {
  const pool = new Pool(target, { connections });
  const server = createServer((req, res) => {
    pool
      .request({
        path: req.url ?? '/',
        method: req.method as 'GET',
        headers: forwardable(req.headers),
        body: req,
      })
      .then(
        (upstream) => {
          res.writeHead(upstream.statusCode, upstream.headers as Record<string, string>);
          upstream.body.pipe(res);
        },
        () => res.writeHead(502).end(),
      );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await pool.close();
    },
  };
}
