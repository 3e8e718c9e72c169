import { mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { workflowsPath } from '../../../services/worker/workflows-path.ts';

describe('the worker and a prebuilt workflow bundle', () => {
  const bundle = path.join(mkdtempSync(path.join(tmpdir(), 'cs-bundle-')), 'bundle.js');
  writeFileSync(bundle, '// bundle');

  it('uses a bundle newer than every workflow source', () => {
    const future = new Date(Date.now() + 3600_000);
    utimesSync(bundle, future, future);
    expect(workflowsPath(bundle)).toEqual({ workflowBundle: { codePath: bundle } });
  });

  it('refuses a bundle older than the workflow sources and bundles from source instead (it ran stale code once)', () => {
    const past = new Date(0);
    utimesSync(bundle, past, past);
    const warnings: string[] = [];
    const chosen = workflowsPath(bundle, (m) => warnings.push(m));
    expect(chosen).toHaveProperty('workflowsPath');
    expect(chosen).toHaveProperty('bundlerOptions.preloadModules', [expect.stringMatching(/workflows\/preload\.ts$/)]);
    expect(warnings[0]).toMatch(/older than the workflow sources/);
  });

  it('bundles from source without a bundle', () => {
    expect(workflowsPath(undefined)).toHaveProperty('workflowsPath');
    expect(workflowsPath('/no/such/bundle.js')).toHaveProperty('workflowsPath');
  });
});
