import { existsSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

/**
 * A prebuilt bundle (`.data/workflow-bundle.js`, made by `npx tsx services/worker/bundle.ts`) starts the worker
 * in well under a second; without one the SDK bundles the workflow sources with webpack at start-up.
 */
export function workflowsPath(bundle: string | undefined): { workflowsPath: string } | { workflowBundle: { codePath: string } } {
  if (bundle && existsSync(bundle)) return { workflowBundle: { codePath: bundle } };
  return { workflowsPath: path.join(ROOT, 'workflows', 'index.ts') };
}
