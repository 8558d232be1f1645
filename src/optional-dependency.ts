// Heavy CommonJS dependencies a gateway needs only when its config asks for them, loaded on first use.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * Returns a loader for the CommonJS package `specifier`: the first call requires it, later calls return the
 * same module. A gateway without Redis, PostgreSQL, SQLite transcripts or tracing then never loads those
 * clients (node-redis alone is ~650 modules and ~20 MB of resident memory).
 */
export function optionalDependency<T>(specifier: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(specifier) as T);
}
