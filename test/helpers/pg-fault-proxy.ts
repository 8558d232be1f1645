// A TCP proxy in front of a real PostgreSQL that loses commit acknowledgements and hangs connections on demand.
import { connect, createServer } from 'node:net';
import type { Socket } from 'node:net';

/** A running proxy. Connect to `url` instead of the database's own address. */
export interface PgFaultProxy {
  /** The target's connection URL with the proxy's host and port. */
  readonly url: string;
  /** Commit acknowledgements swallowed so far (each one cost its connection). */
  readonly cuts: number;
  /**
   * The next `count` INSERTs are forwarded and committed by the server, but their reply (`CommandComplete`
   * and `ReadyForQuery`) never reaches the client: the proxy drops it and closes both sockets.
   */
  cutAfterCommit(count: number): void;
  /**
   * From now on nothing is forwarded, in either direction, on the open connections and (unless `which`
   * is `open`) on new ones, and no socket is closed: no reply, no FIN, as with a peer that vanished
   * behind a stateful firewall.
   */
  hang(which?: 'all' | 'open'): void;
  /** Destroys every socket and stops listening. */
  close(): Promise<void>;
}

/**
 * Starts the proxy on a free loopback port in front of `targetUrl` (a `postgres://` URL; no TLS). It
 * reads the framing of the frontend/backend protocol v3 ("Message Formats" in the PostgreSQL docs: a
 * type byte and an int32 length; the startup message has no type byte) to know when the server has
 * committed an INSERT: `CommandComplete` "INSERT …", then `ReadyForQuery` (an implicit transaction
 * commits before it is sent).
 */
export async function startPgFaultProxy(targetUrl: string): Promise<PgFaultProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  let cutsLeft = 0;
  let cuts = 0;
  let hangNew = false;
  /** One per proxied connection: stops its forwarding. */
  const hangs = new Set<() => void>();

  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  };

  // allowHalfOpen: a client's FIN is not answered with ours, so a hung connection stays hung.
  const server = createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    if (hangNew) {
      client.resume(); // read and discard: the kernel keeps ACKing, nothing comes back
      return;
    }
    let hung = false;
    const hangThis = () => {
      hung = true;
    };
    hangs.add(hangThis);
    client.once('close', () => hangs.delete(hangThis));
    const upstream = connect({ host: target.hostname, port: Number(target.port || 5432) });
    track(upstream);
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => {
      if (!hung) client.destroy();
    });

    let insertPending = false;
    let insertCompleted = false;
    /** Server frames held back while an INSERT to be cut is on its way. */
    let heldBack: Buffer[] = [];
    const fromClient = framer(true, (frame) => {
      if (hung) return;
      const type = String.fromCharCode(frame[0]!);
      if ((type === 'P' || type === 'Q') && /\bINSERT\s+INTO\b/i.test(frame.toString('utf8', 5)))
        insertPending = cutsLeft > 0;
      upstream.write(frame);
    });
    const fromServer = framer(false, (frame) => {
      if (hung) return;
      if (!insertPending) {
        client.write(frame);
        return;
      }
      const type = String.fromCharCode(frame[0]!);
      heldBack.push(frame);
      if (type === 'C' && frame.toString('utf8', 5).startsWith('INSERT')) insertCompleted = true;
      if (type !== 'Z') return;
      insertPending = false;
      if (insertCompleted && cutsLeft > 0) {
        cutsLeft--;
        cuts++;
        heldBack = [];
        cut();
        return;
      }
      for (const held of heldBack) client.write(held);
      heldBack = [];
      insertCompleted = false;
    });
    client.on('data', fromClient);
    upstream.on('data', fromServer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);

  return {
    url: url.toString(),
    get cuts() {
      return cuts;
    },
    cutAfterCommit(count) {
      cutsLeft = count;
    },
    hang(which = 'all') {
      for (const hangOne of hangs) hangOne();
      if (which === 'all') hangNew = true;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Splits a byte stream into whole protocol messages. The client's first message (the startup packet)
 * has no type byte; every other message is `type, int32 length (itself included), body`.
 */
function framer(startsUntyped: boolean, onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  let untyped = startsUntyped;
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    for (;;) {
      const head = untyped ? 0 : 1;
      if (pending.length < head + 4) return;
      const size = head + pending.readUInt32BE(head);
      if (pending.length < size) return;
      const frame = pending.subarray(0, size);
      pending = pending.subarray(size);
      untyped = false;
      onFrame(frame);
    }
  };
}
