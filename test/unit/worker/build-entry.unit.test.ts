import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildWorkerEntry, inputsFile } from '../../../services/worker/build-entry.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');

describe('the prebuilt worker entry (started with plain node by make up)', () => {
  const out = path.join(mkdtempSync(path.join(tmpdir(), 'cs-worker-entry-')), 'worker.mjs');
  const built = buildWorkerEntry(out);

  it('bundles our sources only, and records them', async () => {
    const { inputs } = await built;
    expect(inputs).toContain(path.join(ROOT, 'services', 'worker', 'main.ts'));
    expect(inputs).toContain(path.join(ROOT, 'activities', 'index.ts'));
    expect(inputs.filter((p) => p.includes(`${path.sep}node_modules${path.sep}`))).toEqual([]);
    expect(JSON.parse(readFileSync(inputsFile(out), 'utf8'))).toEqual(inputs);
  }, 60_000);

  it('keeps each module’s own folder where it asks for import.meta.dirname', async () => {
    await built;
    const code = readFileSync(out, 'utf8');
    expect(code).not.toContain('import.meta.dirname');
    expect(code).toContain(JSON.stringify(path.join(ROOT, 'services', 'worker'))); // workflows-path.ts finds the sources from there
  }, 60_000);

  it('refuses to start when a source is newer than the build', async () => {
    await built;
    const past = new Date('2001-01-01T00:00:00Z');
    utimesSync(inputsFile(out), past, past);
    const res = spawnSync(process.execPath, [out], {
      env: { PATH: process.env['PATH'], DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', TEMPORAL_ADDRESS: '127.0.0.1:1' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(res.status).toBe(1);
    expect(res.stdout + res.stderr).toMatch(/older than its sources/);
  }, 60_000);
});
