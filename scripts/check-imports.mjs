#!/usr/bin/env node
// Checks the import graph of src/ and emulators/: no cycles, and no import from a layer to a layer above it.
// Run by `npm run lint`. Layers, lowest first; a file may import its own layer's files or lower layers'.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const LAYERS = [
  'src/errors.ts',
  'src/optional-dependency.ts',
  'src/config',
  'src/stores',
  'src/pipeline',
  'src/telemetry',
  'src/cache',
  'src/policies',
  'src/server',
  'src/streams',
  'src/jobs',
  'src/upstreams',
  'src/entrypoints',
  'src/gateway.ts',
  'src/cluster',
  'emulators',
  'src/bench',
  'src/cli',
];
const root = resolve(dirname(new URL(import.meta.url).pathname), '..');

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function layerOf(file) {
  const rel = relative(root, file);
  const index = LAYERS.findIndex((layer) => rel === layer || rel.startsWith(`${layer}/`));
  return { rel, index };
}

const all = [...files(join(root, 'src')), ...files(join(root, 'emulators'))];
const graph = new Map();
const problems = [];
for (const file of all) {
  const text = readFileSync(file, 'utf8');
  const targets = [];
  for (const match of text.matchAll(/^\s*(?:import|export)[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)) {
    const target = resolve(dirname(file), match[1].replace(/\.js$/, '.ts'));
    targets.push(target);
    const from = layerOf(file);
    const to = layerOf(target);
    if (from.index === -1 || to.index === -1) {
      problems.push(`${from.rel}: ${to.rel} is in no layer (add it to LAYERS in scripts/check-imports.mjs)`);
    } else if (to.index > from.index) {
      problems.push(
        `${from.rel} imports ${to.rel}: an import up from ${LAYERS[from.index]} to ${LAYERS[to.index]}`,
      );
    }
  }
  graph.set(file, targets);
}

// Cycles between files (depth-first search, grey/black marking).
const state = new Map();
const stack = [];
function visit(file) {
  state.set(file, 'grey');
  stack.push(file);
  for (const next of graph.get(file) ?? []) {
    if (state.get(next) === 'grey') {
      const cycle = stack.slice(stack.indexOf(next)).map((f) => relative(root, f));
      problems.push(`import cycle: ${[...cycle, relative(root, next)].join(' -> ')}`);
    } else if (state.get(next) === undefined && graph.has(next)) visit(next);
  }
  stack.pop();
  state.set(file, 'black');
}
for (const file of graph.keys()) if (state.get(file) === undefined) visit(file);

if (problems.length > 0) {
  for (const problem of problems) console.error(problem);
  process.exit(1);
}
console.log(`imports: ${all.length} files, no cycles, no import up a layer`);
