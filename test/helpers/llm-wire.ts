// Test helpers: real wire bytes of each format, written by the emulator's own surfaces, and chunked feeding.
import type { Generation, Surface } from '../../emulators/llm/surface.js';
import type { StreamTap } from '../../src/entrypoints/llm/format.js';

/** A generation of `pieces` as the emulator would stream it. */
export function generation(id: string, pieces: string[], body: Record<string, unknown> = {}): Generation {
  return {
    id,
    model: 'emu-small',
    created: 1,
    count: pieces.length,
    piece: (i) => pieces[i]!,
    promptTokens: 7,
    body,
  };
}

/** The whole SSE body `surface` streams for `pieces`. */
export function streamed(surface: Surface, id: string, pieces: string[]): Buffer {
  const stream = surface.stream(generation(id, pieces), true);
  return Buffer.from(
    stream.head + pieces.map((p) => stream.token(p)).join('') + stream.tail(pieces.join('')),
  );
}

/** Feeds `bytes` to a fresh tap in chunks of `size` bytes; returns the text seen and the tap. */
export function tapInChunks(
  makeTap: (onText: (text: string) => void) => StreamTap,
  bytes: Buffer,
  size: number,
): { text: string; tap: StreamTap } {
  let text = '';
  const tap = makeTap((piece) => (text += piece));
  for (let at = 0; at < bytes.length; at += size) tap.push(bytes.subarray(at, at + size));
  return { text, tap };
}
