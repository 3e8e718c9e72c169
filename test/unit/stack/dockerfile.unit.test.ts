import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { build, ENTRIES, RUNTIME_ASSETS, WORKFLOW_BUNDLE } from '../../../services/build/build.ts';
import { copiesFrom, layOutRuntime, readDockerfile, words } from '../../stack/dockerfile.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const stages = readDockerfile(ROOT);
const runtime = stages.at(-1)!;
const buildStage = stages.find((s) => s.name === 'build')!;
const runs = (stage: typeof runtime) => stage.instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');

// This reads the Dockerfile and checks what it promises against a real build of dist/ laid out as its runtime stage
// copies it; test/int/image.int.test.ts builds the image itself (buildah) and runs it (podman).
describe('the Dockerfile', () => {
  it('is multi-stage: a build stage compiles, the runtime stage only copies', () => {
    expect(stages.map((s) => s.name)).toEqual(['build', 'deps', 'runtime']);
    expect(runs(buildStage)).toContain('services/build/build.ts');
    expect(runs(buildStage)).toContain('services/console/build.ts');
    // Nothing in the runtime stage compiles or installs TypeScript tooling.
    expect(runs(runtime)).not.toMatch(/tsx|tsc|esbuild|npm (ci|install)|\.ts\b/);
    expect(runs(stages.find((s) => s.name === 'deps')!)).toMatch(/npm ci --omit=dev/);
  });

  it('runs as an unprivileged user', () => {
    const users = runtime.instructions.filter((i) => i.op === 'USER').map((i) => i.args);
    expect(users.length).toBeGreaterThan(0);
    const last = users.at(-1)!.split(':');
    expect(last[0]).not.toMatch(/^(root|0)$/);
    expect(Number(last[0])).toBeGreaterThan(999);
    expect(last[1] ?? '').not.toMatch(/^(root|0)$/);
    // USER comes after every RUN of the stage: nothing the image runs later is root.
    const idx = (op: string) => runtime.instructions.map((i) => i.op).lastIndexOf(op);
    expect(idx('USER')).toBeGreaterThan(idx('RUN'));
  });

  it('starts built JavaScript with plain node: no tsx, no TypeScript at run time', () => {
    const entry = words(runtime.instructions.find((i) => i.op === 'ENTRYPOINT')!.args);
    const cmd = words(runtime.instructions.find((i) => i.op === 'CMD')!.args);
    expect(entry).toEqual(['node']);
    expect(cmd).toEqual(['dist/api.mjs']);
    for (const w of [...entry, ...cmd]) expect(w).not.toMatch(/tsx|\.ts$|--import|--loader/);
    const env = runtime.instructions.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
    expect(env).toContain(`COUNTERSIGN_WORKFLOW_BUNDLE=/app/dist/${WORKFLOW_BUNDLE}`);
    expect(env).not.toMatch(/NODE_OPTIONS/);
  });

  it('keeps generated and local files out of the build context', () => {
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['node_modules', '.data', 'dist', '.git', 'services/console/dist']) expect(ignored).toContain(p);
  });

  describe('against a real build', { timeout: 120_000 }, () => {
    const out = mkdtempSync(path.join(tmpdir(), 'cs-image-'));
    const app = path.join(out, 'app');
    let missing: string[] = [];
    beforeAll(async () => {
      await build({ outDir: path.join(out, 'dist') });
      // The build stage's /app is the source tree plus what its RUN steps made: dist/ (here the temporary build)
      // and the console's files (services/console/build.ts; `make test` builds them before the tests run).
      ({ missing } = layOutRuntime(stages, (source) => (source.startsWith('dist/') ? out : ROOT), app));
      // The image's node_modules are the production dependencies (deps stage); the checkout's are a superset.
      symlinkSync(path.join(ROOT, 'node_modules'), path.join(app, 'node_modules'));
    }, 180_000);

    it('copies files the build made: every process, the CLI, its replay threads, the workflow bundle', () => {
      const consoleBuilt = existsSync(path.join(ROOT, 'services/console/dist'));
      expect(missing.filter((m) => consoleBuilt || m !== 'services/console/dist')).toEqual([]);
      for (const f of Object.keys(ENTRIES)) expect(existsSync(path.join(app, 'dist', f)), f).toBe(true);
      expect(statSync(path.join(app, 'dist', WORKFLOW_BUNDLE)).size).toBeGreaterThan(100_000);
      // No build record in the image: a stale-source check there would find no sources and refuse.
      expect(readdirSync(path.join(app, 'dist')).filter((f) => f.endsWith('.json'))).toEqual([]);
    });

    it('copies every file the built code reads at run time, and no TypeScript source', () => {
      const targets = copiesFrom(runtime, 'build').flatMap((c) => c.sources);
      for (const asset of RUNTIME_ASSETS) expect(targets, asset).toContain(asset);
      const ts: string[] = [];
      const walk = (d: string) => {
        for (const f of readdirSync(d, { withFileTypes: true })) {
          if (f.isDirectory()) walk(path.join(d, f.name));
          else if (/\.(ts|tsx|mts|cts)$/.test(f.name) && !f.name.endsWith('.d.ts')) ts.push(path.join(d, f.name));
        }
      };
      walk(app);
      expect(ts).toEqual([]);
    });

    it('the laid-out CLI runs with plain node from the image layout', () => {
      const res = execFileSync(process.execPath, [path.join(app, 'dist', 'cli.mjs'), 'policy', 'validate', path.join(app, 'services/stack/example-policy.yaml')], {
        cwd: app, env: { PATH: process.env['PATH'] }, encoding: 'utf8',
      });
      expect(res).toMatch(/ok: policy example/);
    });
  });
});
