#!/usr/bin/env node
// `npx countersign` entry: runs the CLI built to plain JavaScript (dist/cli.mjs, `npm run build`). In a checkout
// whose sources are newer than that build (or that has none yet), the CLI's part of the build is made first
// (esbuild, about a second); a deployment ships dist/ and never builds.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');
const built = path.join(root, 'dist', 'cli.mjs');

function current(file) {
  const sidecar = `${file}.inputs.json`;
  if (!existsSync(file)) return false;
  // Without the record of its sources (a deployment), the build is all there is.
  if (!existsSync(sidecar)) return true;
  const at = Math.min(statSync(file).mtimeMs, statSync(sidecar).mtimeMs);
  return JSON.parse(readFileSync(sidecar, 'utf8')).every((p) => existsSync(p) && statSync(p).mtimeMs <= at);
}

if (!current(built) || !current(path.join(root, 'dist', 'replay-worker.mjs'))) {
  const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'services', 'build', 'build.ts'), '--only', 'cli'], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (res.status !== 0) {
    process.stderr.write(`${res.stderr ?? ''}countersign: building the CLI failed (npm run build)\n`);
    process.exit(3);
  }
}
await import(built);
