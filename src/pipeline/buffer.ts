// Reads a reply body into memory up to a limit, for policies that must keep or share it (cache, coalesce).
import { Readable } from 'node:stream';
import type { Reply } from './types.js';

export type Buffered =
  { complete: true; reply: Reply & { body: Buffer | null } } | { complete: false; reply: Reply };

/**
 * Buffers `reply.body` if it fits in `maxBytes`. When it does not, the reply is returned still streaming
 * (the bytes already read are replayed first) and `complete` is false: the caller relays it but must not
 * keep it.
 */
export async function bufferReply(reply: Reply, maxBytes: number): Promise<Buffered> {
  const body = reply.body;
  if (body === null || Buffer.isBuffer(body)) return { complete: true, reply: { ...reply, body } };
  const declared = Number(reply.headers['content-length']);
  if (declared > maxBytes) return { complete: false, reply };
  const chunks: Buffer[] = [];
  let size = 0;
  const iterator = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  for (;;) {
    const next = await iterator.next();
    if (next.done === true) return { complete: true, reply: { ...reply, body: Buffer.concat(chunks, size) } };
    chunks.push(next.value);
    size += next.value.length;
    if (size > maxBytes) {
      const rest = Readable.from(resume(chunks, iterator));
      return { complete: false, reply: { ...reply, body: rest } };
    }
  }
}

async function* resume(head: Buffer[], tail: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield* head;
  for (;;) {
    const next = await tail.next();
    if (next.done === true) return;
    yield next.value;
  }
}
