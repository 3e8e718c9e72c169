import { defineConfig } from 'vitest/config';

// Tiers by file name (style item 10). Integration tests share one real stack, started by
// `make test` before vitest runs; they run one file at a time because they share Temporal task queues.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/**/*.unit.test.ts'], environment: 'node' } },
      {
        test: {
          name: 'int',
          include: ['test/**/*.int.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        // Real Chromium (Debian's, driven by playwright-core) against a whole test stack.
        test: {
          name: 'browser',
          include: ['test/**/*.browser.test.ts'],
          environment: 'node',
          testTimeout: 180_000,
          hookTimeout: 240_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
