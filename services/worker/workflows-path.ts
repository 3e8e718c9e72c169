import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
/** What the workflow bundle is built from: workflow code and the pure modules it imports. */
const SOURCES = ['workflows', 'schemas', 'services/decisions/ids.ts', 'services/decisions/run-view.ts', 'services/lifecycle/activation-review.ts'];

function newestSource(): number {
  let newest = 0;
  const visit = (p: string) => {
    const s = statSync(p);
    if (s.isDirectory()) for (const f of readdirSync(p)) visit(path.join(p, f));
    else if (p.endsWith('.ts')) newest = Math.max(newest, s.mtimeMs);
  };
  for (const s of SOURCES) visit(path.join(ROOT, s));
  return newest;
}

/**
 * How the workflow bundle is built, wherever it is built (prebuilt, at worker start-up, in the replay tier):
 * zod is loaded once per worker and shared by every run (workflows/preload.ts says why and how).
 */
export const BUNDLER_OPTIONS = { preloadModules: [path.join(ROOT, 'workflows', 'preload.ts')] };

/**
 * The workflow interceptors every bundle carries (OpenTelemetry, passing straight through in runs started
 * without a trace): given to bundleWorkflowCode as `workflowInterceptorModules`, and to a worker that bundles
 * at start-up (or a replayer) as `interceptors.workflowModules`.
 */
export const WORKFLOW_INTERCEPTOR_MODULES = [path.join(ROOT, 'workflows', 'tracing-interceptors.ts')];

/**
 * A prebuilt bundle (`services/worker/bundle.ts`, made by `make up` and `make test`) starts the worker in well
 * under a second; without one the SDK bundles the workflow sources with webpack at start-up. A bundle older
 * than the sources is ignored: running stale workflow code would be a silent, dangerous mismatch.
 */
export function workflowsPath(bundle: string | undefined, warn: (msg: string) => void = () => {}): { workflowsPath: string; bundlerOptions: typeof BUNDLER_OPTIONS } | { workflowBundle: { codePath: string } } {
  // A deployment built from dist/ (the container image) has the bundle and no workflow sources: the bundle is
  // all there is, and nothing can be newer than it.
  if (!existsSync(path.join(ROOT, 'workflows'))) {
    if (bundle && existsSync(bundle)) return { workflowBundle: { codePath: bundle } };
    throw new Error(`no workflow bundle at ${bundle ?? '(COUNTERSIGN_WORKFLOW_BUNDLE is not set)'} and no workflow sources to bundle: set COUNTERSIGN_WORKFLOW_BUNDLE to the prebuilt dist/workflow-bundle.js`);
  }
  if (bundle && existsSync(bundle)) {
    if (statSync(bundle).mtimeMs >= newestSource()) return { workflowBundle: { codePath: bundle } };
    warn(`workflow bundle ${bundle} is older than the workflow sources; bundling at start-up instead`);
  }
  return { workflowsPath: path.join(ROOT, 'workflows', 'index.ts'), bundlerOptions: BUNDLER_OPTIONS };
}
