// @ts-check
import tseslint from 'typescript-eslint';
import globals from 'globals';

// Node built-ins and I/O libraries are fenced out of workflow code: Temporal replays workflows
// deterministically, so anything that reads the clock, the network or the disk there breaks replay.
const nodeBuiltins = [
  'assert', 'buffer', 'child_process', 'cluster', 'crypto', 'dgram', 'dns', 'events', 'fs', 'fs/promises',
  'http', 'http2', 'https', 'net', 'os', 'path', 'perf_hooks', 'process', 'readline', 'stream', 'timers',
  'tls', 'url', 'util', 'v8', 'vm', 'worker_threads', 'zlib',
];

export default tseslint.config(
  { ignores: ['node_modules/**', '.data/**', 'dist/**', 'coverage/**', 'services/console/dist/**', 'services/console/generated/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
      globals: { ...globals.node },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      // Fastify hooks and interface implementations are async by contract even when they do not await.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [
          ...nodeBuiltins.flatMap((m) => [m, `node:${m}`]).map((name) => ({ name, message: 'Workflow code must be deterministic: no Node built-ins.' })),
          { name: 'pg', message: 'Workflow code does no I/O: call an activity.' },
          { name: 'kafkajs', message: 'Workflow code does no I/O: call an activity.' },
          { name: '@temporalio/client', message: 'Workflows use @temporalio/workflow, not the client.' },
          { name: '@temporalio/worker', message: 'Workflows use @temporalio/workflow, not the worker.' },
          { name: '@temporalio/activity', message: 'Workflows call activities through proxyActivities.' },
        ],
        patterns: [
          { group: ['../services/events/*', '../services/api/*', '../services/channels/*', '../services/audit/*', '../services/cli/*', '../services/sdk/*', '../services/stack/*', '../services/config*', '../activities/*.ts', '!../activities/types.ts'],
            message: 'Workflow code may import only @temporalio/workflow, schemas/, pure domain code and activity types.' },
        ],
      }],
      'no-restricted-globals': ['error',
        { name: 'setTimeout', message: 'Use sleep() from @temporalio/workflow.' },
        { name: 'setInterval', message: 'Use sleep() from @temporalio/workflow.' },
        { name: 'fetch', message: 'Workflow code does no I/O: call an activity.' },
        { name: 'process', message: 'Workflow code does not read the environment.' },
      ],
    },
  },
  {
    // Tests read untyped JSON responses; strict any-safety there costs more than it catches.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
