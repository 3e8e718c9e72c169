/**
 * CLI exit codes: 0 success; 1 the check failed (invalid policy, failing test, audit divergence);
 * 2 usage error; 3 could not reach a dependency.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, unavailable: 3 } as const;
