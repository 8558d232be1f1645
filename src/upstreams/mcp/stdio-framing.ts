// Cheaper writes for the SDK's stdio client transport: a turn's first message at once, the rest in one pipe write.
import type { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import type { Writable } from 'node:stream';

/** The SDK transport's fields this module reads (private in its typings, stable in 2.x). */
interface TransportInternals {
  _process?: { stdin?: Writable | null };
  send: StdioClientTransport['send'];
}

/**
 * Tunes one SDK `StdioClientTransport` instance, leaving its class alone (the SDK's era probe on a disposable
 * sibling process needs the exact base class): the first message of an event-loop turn goes to the child at
 * once, and the others sent in the same turn follow in one write when the turn ends. Each pipe write wakes
 * the child, and those writes were about a fifth of the gateway's CPU samples per tool call at concurrency
 * 16 (bench/RESULTS.md, 2026-12-01 17:45). Holding every message until the turn's end (the first version)
 * saved CPU under load but cost a lone call 25-75 us (p50 at concurrency 1, 2026-12-01 18:40): the first
 * one never waits now. Order is kept (a corked stream queues behind what it already wrote). A transport
 * without the expected field (another SDK version) is left as it is.
 *
 * (Validating each incoming message against the one schema its shape allows, instead of the SDK's union,
 * was tried: it moved the read path from 2.2% to 2.0% of the samples, too little for a copy of the SDK's
 * read buffer.)
 */
export function tuneStdioTransport(transport: StdioClientTransport): void {
  const internals = transport as unknown as TransportInternals;
  const send = internals.send.bind(transport);
  let turnStarted = false;
  internals.send = (message) => {
    const stdin = internals._process?.stdin;
    if (stdin != null && !stdin.destroyed) {
      if (!turnStarted) {
        turnStarted = true;
        setImmediate(() => {
          turnStarted = false;
          if (stdin.writableCorked > 0) stdin.uncork();
        });
      } else if (stdin.writableCorked === 0) {
        stdin.cork();
      }
    }
    return send(message);
  };
}
