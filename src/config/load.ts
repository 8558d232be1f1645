// Loads slipstream.yaml: YAML with line:col positions, ${ENV} interpolation, zod validation, located errors.
import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit } from 'yaml';
import type { Document, Node } from 'yaml';
import type { z } from 'zod';
import { GatewayError } from '../errors.js';
import { configSchema } from './schema.js';
import type { Config } from './schema.js';

/** One problem found in a config file, already located. */
export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  /** Dotted path of the offending key, like `routes[2].retry.attempts`. */
  path: string;
  message: string;
}

/** Thrown by {@link loadConfig}: `GW_CONFIG_INVALID` with every problem in `data.problems`. */
export class ConfigError extends GatewayError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: ConfigProblem[]) {
    super('GW_CONFIG_INVALID', problems.map(formatProblem).join('\n'), { data: { problems } });
    this.problems = problems;
  }
}

/** Formats a problem the way compilers do: `file:line:col path: message`. */
export function formatProblem(problem: ConfigProblem): string {
  const where = problem.path === '' ? '' : ` ${problem.path}:`;
  return `${problem.file}:${problem.line}:${problem.col}${where} ${problem.message}`;
}

/**
 * Reads and validates a config file. `${NAME}` and `${NAME:-default}` in string values are replaced
 * from `env` (default `process.env`). Throws {@link ConfigError} listing every problem with its position.
 */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  return parseConfig(await readConfigText(file), file, env);
}

/** Reads a config file's text; throws {@link ConfigError} (located at 1:1) when it cannot be read. */
export async function readConfigText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : String(error);
    throw new ConfigError([{ file, line: 1, col: 1, path: '', message: reason }]);
  }
}

/** Validates config text; `file` is only used in messages. See {@link loadConfig}. */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number, path: string, message: string): ConfigProblem => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col, path, message };
  };

  // Only the first syntax error: the ones after it are usually its echoes.
  const syntax = doc.errors[0] ?? doc.warnings[0];
  if (syntax !== undefined) throw new ConfigError([at(syntax.pos[0], '', syntax.message.split('\n')[0]!)]);

  const envProblems = interpolate(doc, env, at);
  if (envProblems.length > 0) throw new ConfigError(envProblems);

  const result = configSchema.safeParse(doc.toJS() ?? {});
  if (result.success) {
    sources.set(result.data, (path, message) =>
      locate(doc, { code: 'custom', path, message, input: undefined }, at),
    );
    return result.data;
  }
  throw new ConfigError(result.error.issues.map((issue) => locate(doc, unwrapUnion(issue), at)));
}

type Locator = (offset: number, path: string, message: string) => ConfigProblem;

/** Where each parsed config came from, for problems found only at start-up (a tool-name clash). */
const sources = new WeakMap<Config, (path: PropertyKey[], message: string) => ConfigProblem>();

/**
 * A {@link ConfigError} for a problem found after parsing (at start-up), located at `path` in the file
 * `config` was parsed from (`<config>:1:1` for a config built in code).
 */
export function configProblem(config: Config, path: PropertyKey[], message: string): ConfigError {
  const locateIn = sources.get(config);
  return new ConfigError([
    locateIn?.(path, message) ?? { file: '<config>', line: 1, col: 1, path: formatPath(path), message },
  ]);
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces ${NAME} / ${NAME:-default} inside string scalars, in place, keeping node positions. */
function interpolate(doc: Document, env: NodeJS.ProcessEnv, at: Locator): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      const text = node.value.replace(ENV_REF, (_match, name: string, fallback: string | undefined) => {
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        problems.push(
          at(node.range?.[0] ?? 0, pathOf(ancestors, node), `environment variable ${name} is not set`),
        );
        return '';
      });
      // An unquoted value that was only a reference may stand for a number or boolean ("${PORT:-8080}").
      const typed = node.type === 'PLAIN' && /^(\d+(\.\d+)?|true|false)$/.test(text);
      node.value = !typed ? text : text === 'true' ? true : text === 'false' ? false : Number(text);
    },
  });
  return problems;
}

/** Renders a visitor's ancestor chain as a dotted path (`routes[0].upstream`). */
function pathOf(ancestors: readonly unknown[], node: unknown): string {
  const parts: PropertyKey[] = [];
  let child = node;
  for (let i = ancestors.length - 1; i >= 0; i--) {
    const parent = ancestors[i];
    if (isSeq(parent)) parts.unshift(parent.items.indexOf(child));
    else if (isMap(parent)) {
      const pair = parent.items.find((p) => p === child || p.value === child);
      if (pair !== undefined && isScalar(pair.key)) parts.unshift(String(pair.key.value));
    }
    child = parent;
  }
  return formatPath(parts);
}

function formatPath(parts: readonly PropertyKey[]): string {
  return parts
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

/**
 * A union issue ("Invalid input") hides the useful one: report the branch that got furthest
 * (`retry: { attempts: "x" }` is about `attempts`, not about `retry` not being `false`).
 */
function unwrapUnion(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return issue;
  const depth = (branch: z.core.$ZodIssue[]) => Math.max(...branch.map((i) => i.path.length));
  const branches = issue.errors.filter((branch) => branch.length > 0);
  const best = branches.reduce((a, b) => (depth(b) >= depth(a) ? b : a));
  if (depth(best) === 0 && best[0]?.code !== 'custom') {
    const expected = branches.map((b) => b[0]!.message.replace(/^Invalid input: expected /, '')).join(' or ');
    return { ...issue, message: `expected ${expected}` };
  }
  const inner = best[0]!;
  return unwrapUnion({ ...inner, path: [...issue.path, ...inner.path] });
}

/** Finds the YAML node a zod issue points at (or its nearest existing ancestor) and words the message. */
function locate(doc: Document, issue: z.core.$ZodIssue, at: Locator): ConfigProblem {
  let path = [...issue.path];
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    message = `unknown key "${key}"` + (issue.keys.length > 1 ? ` (and ${issue.keys.length - 1} more)` : '');
    const map = doc.getIn(path, true);
    if (isMap(map)) {
      const pair = map.items.find((p) => isScalar(p.key) && p.key.value === key);
      if (pair !== undefined && isScalar(pair.key))
        return at(pair.key.range?.[0] ?? 0, formatPath(path), message);
    }
  }
  if (issue.code === 'invalid_type' && !doc.hasIn(issue.path)) message = 'required key is missing';
  // Walk up until a node exists: a missing key is reported at the map that should hold it.
  while (path.length > 0 && !(doc.getIn(path, true) as Node | undefined)?.range) path = path.slice(0, -1);
  const node = path.length > 0 ? (doc.getIn(path, true) as Node) : doc.contents;
  return at(node?.range?.[0] ?? 0, formatPath(issue.path), message);
}
