// Detects whether this runtime honours `reusePort` (SO_REUSEPORT) by binding two sockets to one port.
import { createServer } from 'node:net';
import type { ListenOptions, Server } from 'node:net';

/**
 * True when two servers can listen on the same port of `host` with `reusePort`: Node 22.12+ / 23.1+ on
 * Linux 3.9+ (and a few other kernels). Node 20 ignores the option without a word, so there the second
 * bind fails with `EADDRINUSE`: this tests what the runtime does, not its version number. Binds two
 * ephemeral sockets for a moment and closes them; never throws.
 */
export async function reusePortAvailable(host: string): Promise<boolean> {
  const first = createServer();
  const second = createServer();
  try {
    const port = await bind(first, host, 0);
    await bind(second, host, port);
    return true;
  } catch {
    return false;
  } finally {
    await Promise.all([close(first), close(second)]);
  }
}

function bind(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // @types/node 20 does not know `reusePort`: spread so the option reaches the runtime untyped.
    const options: ListenOptions = { host, port, ...{ reusePort: true } };
    server.listen(options, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
}
