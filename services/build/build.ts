// Builds every process to plain JavaScript in dist/ (`npm run build`; `make up` and `make test` run it, and the
// container image's build stage): the API, worker, publisher, CLI and the one-shot jobs as ES modules, and the
// workflow bundle beside them. What runs from dist/ needs no TypeScript, no tsx and no webpack at run time.
//
//   node --import tsx services/build/build.ts [--only cli] [--out DIR]
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { build as esbuild, type Plugin } from 'esbuild';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const DIST = path.join(ROOT, 'dist');

/** Each process and job, by the file it is built to in dist/. */
export const ENTRIES = {
  'api.mjs': 'services/api/main.ts',
  'worker.mjs': 'services/worker/main.ts',
  'publisher.mjs': 'services/publisher/main.ts',
  'cli.mjs': 'services/cli/run.ts',
  // The replay pool starts its threads from `./replay-worker.mjs` beside the module that creates them (cli.mjs).
  'replay-worker.mjs': 'services/audit/replay-worker.ts',
  'migrate.mjs': 'services/events/migrate-main.ts',
  'init-keys.mjs': 'services/stack/init-keys.ts',
  'seed.mjs': 'services/stack/seed.ts',
} as const;
export type EntryName = keyof typeof ENTRIES;

/** What the CLI needs (its bin builds only this when dist/ is missing or stale). */
export const CLI_ENTRIES: EntryName[] = ['cli.mjs', 'replay-worker.mjs'];

/** The prebuilt workflow bundle; the worker is pointed at it by COUNTERSIGN_WORKFLOW_BUNDLE. */
export const WORKFLOW_BUNDLE = 'workflow-bundle.js';

/**
 * Files the built code reads at run time, where the sources keep them (relative to the root dist/ sits in):
 * a deployment ships them beside dist/, at the same paths (the Dockerfile's runtime stage).
 */
export const RUNTIME_ASSETS = ['services/events/migrations', 'services/console/dist', 'services/stack/example-policy.yaml'] as const;

/** Sidecar of a built entry: the sources it was built from, so a stale build is noticed (stale-build.ts). */
export const inputsFile = (out: string) => `${out}.inputs.json`;

// Bundled into one file, every module would see dist/ as its `import.meta.dirname`. Each keeps its own folder,
// computed at run time from the root dist/ sits in (dist/..), so dist/ moved with the assets beside it (the
// image's /app) finds them where the sources keep them.
const ROOT_BANNER = "import { dirname as __csDirname, join as __csJoin } from 'node:path';\nconst __csRoot = __csDirname(import.meta.dirname);";
const keepDirname: Plugin = {
  name: 'keep-import-meta-dirname',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const rel = path.relative(ROOT, path.dirname(args.path)).split(path.sep).join('/');
      const source = (await readFile(args.path, 'utf8')).replaceAll('import.meta.dirname', `__csJoin(__csRoot, ${JSON.stringify(rel)})`);
      return { contents: source, loader: 'ts' };
    });
  },
};

/** Writes a file by renaming a finished temporary one over it: a concurrent reader never sees half of it. */
function writeAtomically(file: string, contents: string | Uint8Array): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, file);
}

export type BuildOptions = { outDir?: string; only?: readonly EntryName[]; workflowBundle?: boolean };

/** Builds the entries (all by default) and, unless told not to, the workflow bundle. Returns the files written. */
export async function build(opts: BuildOptions = {}): Promise<{ files: string[] }> {
  const outDir = opts.outDir ?? DIST;
  const names = opts.only ?? (Object.keys(ENTRIES) as EntryName[]);
  const res = await esbuild({
    entryPoints: Object.fromEntries(names.map((n) => [n.replace(/\.mjs$/, ''), path.join(ROOT, ENTRIES[n])])),
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    metafile: true,
    write: false,
    logLevel: 'warning',
    banner: { js: ROOT_BANNER },
    plugins: [keepDirname],
    // Read by services/worker/stale-build.ts: the worker refuses to start from a build older than its sources.
    define: { __COUNTERSIGN_BUILT_INPUTS__: JSON.stringify(inputsFile(path.join(outDir, 'worker.mjs'))) },
  });
  const files: string[] = [];
  for (const f of res.outputFiles) {
    writeAtomically(f.path, f.contents);
    files.push(f.path);
  }
  for (const [out, meta] of Object.entries(res.metafile.outputs)) {
    if (!meta.entryPoint) continue;
    const inputs = Object.keys(meta.inputs).map((p) => path.resolve(process.cwd(), p));
    const file = inputsFile(path.resolve(process.cwd(), out));
    writeAtomically(file, `${JSON.stringify(inputs)}\n`);
    files.push(file);
  }
  if (opts.workflowBundle ?? !opts.only) files.push(await buildWorkflowBundle(path.join(outDir, WORKFLOW_BUNDLE)));
  return { files };
}

/** The workflow bundle, built as the worker would build it at start-up (same bundler options). */
export async function buildWorkflowBundle(out: string): Promise<string> {
  const { bundleWorkflowCode } = await import('@temporalio/worker');
  const { BUNDLER_OPTIONS, WORKFLOW_INTERCEPTOR_MODULES } = await import('../worker/workflows-path.ts');
  const quiet = () => {};
  const loud = (m: string) => process.stderr.write(`${m}\n`);
  const { code } = await bundleWorkflowCode({
    workflowsPath: path.join(ROOT, 'workflows', 'index.ts'),
    ...BUNDLER_OPTIONS,
    workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES,
    logger: { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: loud, error: loud },
  });
  writeAtomically(out, code);
  return out;
}

/** True when every built entry in `names` exists and is newer than each source it was built from. */
export function isCurrent(names: readonly EntryName[], outDir = DIST): boolean {
  for (const n of names) {
    const out = path.join(outDir, n);
    const sidecar = inputsFile(out);
    if (!existsSync(out) || !existsSync(sidecar)) return false;
    const built = Math.min(statSync(out).mtimeMs, statSync(sidecar).mtimeMs);
    const inputs = JSON.parse(readFileSync(sidecar, 'utf8')) as string[];
    if (inputs.some((p) => !existsSync(p) || statSync(p).mtimeMs > built)) return false;
  }
  return true;
}

if (import.meta.filename === process.argv[1]) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const only = arg('--only') === 'cli' ? CLI_ENTRIES : undefined;
  const outDir = arg('--out') ? path.resolve(arg('--out')!) : DIST;
  const started = performance.now();
  const { files } = await build({ outDir, ...(only ? { only } : {}) });
  process.stderr.write(`[build] ${files.filter((f) => !f.endsWith('.json')).length} files in ${path.relative(process.cwd(), outDir) || '.'} (${Math.round(performance.now() - started)} ms)\n`);
}
