// Debian's Chromium for browser tests, driven by playwright-core (never a downloaded browser).
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * True when Chromium is installed. When it is not: under `CI=true` this throws (.ci/run installs it, so a
 * missing browser is a broken machine); elsewhere it warns loudly and the caller skips.
 */
export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  const message = `Chromium is not installed at ${CHROMIUM} (apt-get install chromium; .ci/run does it)`;
  if (process.env.CI === 'true') throw new Error(message);
  process.stderr.write(`\n!!! SKIPPING browser tests: ${message}\n\n`);
  return false;
}

/** Headless, sandbox off (tests run as root), and no background traffic to a network that is not there. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
    ],
  });
}
