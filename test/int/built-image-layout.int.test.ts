import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../../services/build/build.ts';
import { layOutRuntime, readDockerfile } from '../stack/dockerfile.ts';
import { addPrincipal, api, eventually, ROOT, startTestStack, type TestStack } from './harness.ts';

function node(args: string[], env: Record<string, string>, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd, env: { PATH: process.env['PATH'] ?? '', ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/**
 * The image's runtime stage without Docker: dist/ built, laid out in a folder as the Dockerfile's runtime stage
 * copies it (no TypeScript source anywhere in it), and the API, worker and publisher started from there with
 * plain node; then decisions, an approval, the migration job and `audit replay` from the same layout.
 */
describe('the processes as the image runs them: built JavaScript, no sources, no tsx', () => {
  let stack: TestStack;
  const out = mkdtempSync(path.join(tmpdir(), 'cs-built-'));
  const app = path.join(out, 'app');
  const dist = (f: string) => path.join(app, 'dist', f);

  beforeAll(async () => {
    await build({ outDir: path.join(out, 'dist') });
    const { missing } = layOutRuntime(readDockerfile(ROOT), (s) => (s.startsWith('dist/') ? out : ROOT), app);
    expect(missing.filter((m) => m !== 'services/console/dist' || existsSync(path.join(ROOT, m)))).toEqual([]);
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(app, 'node_modules'));
    stack = await startTestStack(
      { COUNTERSIGN_WORKFLOW_BUNDLE: dist('workflow-bundle.js') },
      { workerEntry: dist('worker.mjs'), apiEntry: dist('api.mjs'), publisherEntry: dist('publisher.mjs') },
    );
  }, 300_000);
  afterAll(async () => {
    await stack?.stop();
    rmSync(out, { recursive: true, force: true });
  });

  it('holds no TypeScript: every process above ran from dist/ with plain node', () => {
    expect(readdirSync(app)).not.toContain('workflows');
    for (const p of [stack.api, stack.worker, stack.publisher]) expect(p.child.spawnargs.slice(1)).toEqual([expect.stringMatching(/\/app\/dist\/\w+\.mjs$/)]);
  });

  it('decides, waits for an approver, and signs receipts equal to the answers', async () => {
    const bot = await addPrincipal(stack, { name: 'built-bot', kind: 'agent', roles: ['agent'] });
    const clerk = await addPrincipal(stack, { name: 'built-clerk', roles: ['approver'], groups: ['finance'] });
    const ask = (amount: number) => api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'built-bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount } });
    const allow = await ask(120);
    expect(allow.status).toBe(200);
    expect(allow.body.decision).toBe('ALLOW');
    const pending = await ask(900);
    expect(pending.body.status).toBe('pending_approval');
    const answered = await eventually(async () => {
      const r = await api({ url: stack.url, key: clerk.key }, 'POST', `/v1/decisions/${pending.body.decision_id}/approvals`, { verdict: 'approve' });
      return r.status === 200 ? r : undefined;
    }, 60_000, 'the approval to count');
    expect(answered.status).toBe(200);
    for (const [id, decision] of [[allow.body.decision_id, 'ALLOW'], [pending.body.decision_id, 'ALLOW']] as const) {
      const receipt = await eventually(async () => {
        const r = await api(stack, 'GET', `/v1/decisions/${id}/receipt`);
        return r.status === 200 && r.body.receipt?.decision === decision ? r.body : undefined;
      }, 60_000, `receipt of ${id}`);
      expect(receipt.receipt.decision_id).toBe(id);
    }
    // For the README's sizing: each process's resident memory after serving (not asserted).
    const rss = (pid: number | undefined) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
    console.log(`resident memory (MiB): ${[stack.api, stack.worker, stack.publisher].map((p) => `${p.name} ${rss(p.child.pid).toFixed(0)}`).join(', ')}`);
  });

  it('a worker of the layout without its workflow bundle refuses to start, in one line (it cannot bundle: no sources)', async () => {
    const env = { ...stack.env, COUNTERSIGN_WORKFLOW_BUNDLE: path.join(app, 'dist', 'no-such-bundle.js'), COUNTERSIGN_TASK_QUEUE: `${stack.taskQueue}-refused` };
    const r = await node([dist('worker.mjs')], env, app);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/refusing to start: no workflow bundle at .*no-such-bundle\.js and no workflow sources to bundle/);
  });

  it('runs the migration job and the auditor’s replay (with its worker threads) from the same layout', async () => {
    const env = { ...stack.env, DATABASE_ADMIN_URL: stack.env['DATABASE_ADMIN_URL']! };
    const migrated = await node([dist('migrate.mjs')], env, app);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.stderr).toMatch(/schema is up to date/);
    const replay = await eventually(async () => {
      const r = await node([dist('cli.mjs'), 'audit', 'replay', '--from', 'kafka', '--json'], env, app);
      const report = r.stdout ? JSON.parse(r.stdout) as { receipts: unknown[]; divergences: unknown[] } : null;
      return report && report.receipts.length >= 2 ? { r, report } : undefined;
    }, 60_000, 'replay to see both runs');
    expect(replay.report.divergences).toEqual([]);
    expect(replay.r.code).toBe(0);
  });
});
