// Vitest config for mutation runs (`npm run mutate`): only the unit tests of the mutated folders.
import { defineConfig } from 'vitest/config';

/**
 * Stryker reruns these tests for every mutant, so they must be fast and deterministic: the unit tests
 * of src/policies, src/cache and src/streams. Integration tests (real gateways and child processes)
 * take minutes and stay in `npm test`.
 */
export default defineConfig({
  test: {
    include: ['test/policies/**/*.test.ts', 'test/cache/**/*.test.ts', 'test/streams/**/*.test.ts'],
    // A mutant that makes a test hang should cost seconds, not the default suite's 30 s.
    testTimeout: 8_000,
    hookTimeout: 15_000,
  },
});
