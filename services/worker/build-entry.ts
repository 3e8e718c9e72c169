// Prebuilds the worker process itself into one plain ES module (`make up` runs it after the workflow bundle).
// Started with plain `node`, the worker skips tsx: no TypeScript transform of our sources, and no loader hook
// on each of the SDK's hundreds of module resolutions, which is most of a cold start. Packages stay external
// (loaded from node_modules at run time); only our own code is bundled.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build, type Plugin } from 'esbuild';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** Sidecar of a built entry: the sources it was built from, so a stale build is refused at start. */
export const inputsFile = (out: string) => `${out}.inputs.json`;

// Bundled into one file, our modules would all see the output's own folder as `import.meta.dirname`;
// each keeps the folder it was written in.
const keepDirname: Plugin = {
  name: 'keep-import-meta-dirname',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const source = readFileSync(args.path, 'utf8').replaceAll('import.meta.dirname', JSON.stringify(path.dirname(args.path)));
      return { contents: source, loader: 'ts' };
    });
  },
};

// The build may be written outside the checkout (COUNTERSIGN_DATA_DIR), where a bare `import 'pg'` would find
// no node_modules: packages are imported by the absolute URL they resolve to here.
const packagesByUrl: Plugin = {
  name: 'packages-by-url',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:')) return { path: args.path, external: true };
      return { path: import.meta.resolve(args.path), external: true };
    });
  },
};

export async function buildWorkerEntry(out: string): Promise<{ inputs: string[] }> {
  const res = await build({
    entryPoints: [path.join(ROOT, 'services', 'worker', 'main.ts')],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
    plugins: [packagesByUrl, keepDirname],
    define: { __COUNTERSIGN_BUILT_INPUTS__: JSON.stringify(inputsFile(out)) },
  });
  const inputs = Object.keys(res.metafile.inputs).map((p) => path.resolve(process.cwd(), p));
  writeFileSync(inputsFile(out), `${JSON.stringify(inputs)}\n`);
  return { inputs };
}
