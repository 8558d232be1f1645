// The dashboard page, assembled once at start-up: our HTML, CSS and script with uPlot inlined, under a strict CSP.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface DashboardPage {
  /** The whole page: it loads nothing else. */
  readonly html: Buffer;
  /** Its Content-Security-Policy: only its own inline script and style run, and only its own feed is fetched. */
  readonly csp: string;
}

/** The page's own files, shipped in the package beside `dist/`. */
const ASSETS = 'assets/dashboard';

/**
 * Reads the page's HTML, CSS and script and uPlot's build (the `uplot` package, 1.6) and inlines them into
 * one document, so the browser fetches nothing but the page and its feed: no CDN, no network. The CSP
 * allows exactly those inline blocks by their SHA-256 hashes (CSP Level 3 hash sources), `connect-src
 * 'self'` for the feed and nothing else (`default-src 'none'`). Throws when a file is missing (a broken
 * install should stop start-up, not serve a blank page).
 */
export function dashboardPage(): DashboardPage {
  const require = createRequire(import.meta.url);
  const read = (file: string) => readFileSync(file, 'utf8');
  const assets = packageDir(ASSETS);
  const style = `${read(require.resolve('uplot/dist/uPlot.min.css'))}\n${read(join(assets, 'style.css'))}`;
  const scripts = [read(require.resolve('uplot/dist/uPlot.iife.min.js')), read(join(assets, 'client.js'))];
  for (const text of [style, ...scripts]) {
    // An inlined file must not be able to close its own element early.
    if (/<\/(script|style)/i.test(text)) throw new Error('dashboard: an inlined file contains a closing tag');
  }
  const html = read(join(assets, 'index.html'))
    .replace('<!-- styles -->', () => `<style>${style}</style>`)
    .replace('<!-- scripts -->', () => scripts.map((script) => `<script>${script}</script>`).join('\n'));
  const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
  const csp = [
    "default-src 'none'",
    `script-src ${scripts.map(hash).join(' ')}`,
    `style-src ${hash(style)}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html: Buffer.from(html), csp };
}

/** `relative` in the nearest directory above this file that has it (the package root, from src/ or dist/). */
function packageDir(relative: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, relative);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`dashboard: ${relative} not found in the package`);
    dir = parent;
  }
}
