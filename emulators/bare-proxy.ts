// The smallest useful Node proxy (node:http + one undici Pool, end-to-end headers and bodies piped): the floor any Node gateway pays.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { stripHopByHop } from '../src/pipeline/headers.js';

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
        headers: stripHopByHop(req.headers),
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
