// Builds the SDK package (services/sdk, `@countersign/sdk`) into services/sdk/dist: one ES module (esbuild) and
// the type declarations (the TypeScript compiler) of the SDK and of the contract types it names from schemas/.
// `npm pack` in services/sdk then makes the tarball an agent project installs.
//
//   node --import tsx services/build/sdk.ts [--out DIR]
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build as esbuild } from 'esbuild';
import ts from 'typescript';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const SDK_DIR = path.join(ROOT, 'services', 'sdk');
const ENTRY = path.join(SDK_DIR, 'index.ts');

/** Relative `.ts` specifiers in emitted declarations, as the JavaScript they describe is named. */
function rewriteSpecifiers(file: string): void {
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, text.replace(/(from\s+|import\()(['"])(\.{1,2}\/[^'"]+)\.ts\2/g, '$1$2$3.js$2'));
}

function walk(dir: string, visit: (file: string) => void): void {
  for (const f of readdirSync(dir)) {
    const p = path.join(dir, f);
    if (statSync(p).isDirectory()) walk(p, visit);
    else visit(p);
  }
}

/** Builds the package; returns the modules the JavaScript imports (only `node:` built-ins are allowed). */
export async function buildSdk(outDir = path.join(SDK_DIR, 'dist')): Promise<{ imports: string[] }> {
  rmSync(outDir, { recursive: true, force: true });
  const res = await esbuild({
    entryPoints: [ENTRY],
    outfile: path.join(outDir, 'index.js'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: false,
    metafile: true,
    logLevel: 'warning',
    // The SDK runs in the agent's process: nothing of the server may come along. Anything not a built-in fails here.
    external: ['node:*'],
  });
  const imports = [...new Set(Object.values(res.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path)))].sort();

  const types = path.join(outDir, 'types');
  const program = ts.createProgram([ENTRY], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
    types: ['node'],
    strict: true,
    declaration: true,
    emitDeclarationOnly: true,
    allowImportingTsExtensions: true,
    skipLibCheck: true,
    rootDir: ROOT,
    outDir: types,
  });
  const emitted = program.emit();
  const errors = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics].filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length) throw new Error(ts.formatDiagnostics(errors, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => ROOT, getNewLine: () => '\n' }));
  walk(types, (f) => { if (f.endsWith('.d.ts')) rewriteSpecifiers(f); });
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'index.d.ts'), "export * from './types/services/sdk/index.js';\n");
  return { imports };
}

if (import.meta.filename === process.argv[1]) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? path.resolve(process.argv[i + 1]!) : undefined;
  const { imports } = await buildSdk(out);
  process.stderr.write(`[build:sdk] ${path.relative(process.cwd(), out ?? path.join(SDK_DIR, 'dist'))} (imports ${imports.join(', ') || 'nothing'})\n`);
}
