// A one-line progress indicator on stderr, drawn only when stderr is a terminal.

export interface Progress {
  update(done: number, elapsedMs: number): void;
  finish(): void;
}

/** Draws `label [#####.....] 42% 1234 req` on a TTY; does nothing when output is piped (CI logs stay clean). */
export function progressReporter(
  label: string,
  totalMs: number,
  stream: NodeJS.WriteStream = process.stderr,
): Progress {
  if (!stream.isTTY) return { update() {}, finish() {} };
  const width = 24;
  return {
    update(done, elapsedMs) {
      const fraction = Math.min(1, elapsedMs / totalMs);
      const filled = Math.round(fraction * width);
      stream.write(
        `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(fraction * 100)}% ${done} req`,
      );
    },
    finish() {
      stream.write('\r\x1b[2K');
    },
  };
}
