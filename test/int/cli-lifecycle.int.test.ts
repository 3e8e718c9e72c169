import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, ROOT, startTestStack, type TestStack } from './harness.ts';

/**
 * The policy lifecycle from the command line (issue 7), as a user runs it from a checkout: push, validate
 * (a file, a draft against recent runs, a signed export), activate, diff, rollback --to, export/import,
 * pull --agent, agent push [--force], and four-eyes approve. Each command's exit code and output.
 */
let stack: TestStack;
const RUN = randomUUID().slice(0, 8);
const dir = mkdtempSync(path.join(tmpdir(), 'cs-cli-life-'));
const id = `cli-${RUN}`;

function cli(args: string[], key = stack.key): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: Record<string, string | undefined> = { ...process.env, ...stack.env, COUNTERSIGN_URL: stack.url, COUNTERSIGN_API_KEY: key, COUNTERSIGN_CONFIG: path.join(dir, 'none.json') };
    execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), ...args], { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const yaml = (decision: string) => `apiVersion: countersign/v1
kind: Policy
metadata: { id: ${id}, name: CLI lifecycle }
rules:
  - name: cli-rule
    match: { tool: cli_tool_${RUN} }
    decision: ${decision}
`;
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

beforeAll(async () => {
  stack = await startTestStack();
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

describe('countersign policy lifecycle commands', () => {
  it('push, validate, activate, diff, rollback --to, export, validate --file, import, pull --agent', async () => {
    const v1 = file('v1.yaml', yaml('DENY'));
    const bad = file('bad.yaml', yaml('MAYBE'));
    const checked = await cli(['policy', 'validate', bad]);
    expect(checked.code).toBe(1);
    expect(checked.stdout).toMatch(new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+ `));

    const pushed = await cli(['policy', 'push', v1, '--json']);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(JSON.parse(pushed.stdout)).toMatchObject({ id, status: 'draft', version: 1 });
    const validated = await cli(['policy', 'validate', '--draft', id, '--json']);
    expect(validated.code, validated.stderr).toBe(0);
    expect(JSON.parse(validated.stdout)).toMatchObject({ version: 1, window_days: 7 });
    const act = await cli(['policy', 'activate', id, '--json']);
    expect(act.code, act.stderr).toBe(0);
    expect(JSON.parse(act.stdout)).toMatchObject({ id, version: 1, status: 'active' });

    const v2 = await cli(['policy', 'push', file('v2.yaml', yaml('ALLOW')), '--activate', '--json']);
    expect(v2.code, v2.stderr).toBe(0);
    expect(JSON.parse(v2.stdout)).toMatchObject({ version: 2, status: 'active' });
    const diff = await cli(['policy', 'diff', id, '--from', '1', '--to', '2']);
    expect(diff.code).toBe(0);
    expect(diff.stdout).toBe('~ cli-rule\n');

    const rb = await cli(['policy', 'rollback', id, '--to', '1', '--json']);
    expect(rb.code, rb.stderr).toBe(0);
    expect(JSON.parse(rb.stdout)).toMatchObject({ version: 3, rolled_back_to: 1 });
    const rbBad = await cli(['policy', 'rollback', id, '--to', '9']);
    expect(rbBad.code).toBe(1);
    expect(rbBad.stderr).toMatch(/404 not_found: policy .* has no version 9/);
    expect((await cli(['policy', 'rollback', id, '--to', 'x'])).code).toBe(2);

    // Export, check offline, tamper, import.
    const out = path.join(dir, 'export.json');
    const ex = await cli(['policy', 'export', id, '--version', '2', '--out', out]);
    expect(ex.code, ex.stderr).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ policy_id: id, version: 2 });
    const ok = await cli(['policy', 'validate', '--file', out]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`ok: signed export of policy ${id} v2 \\(sha256:[0-9a-f]{64}\\), signed by ed25519:`));
    const tampered = JSON.parse(readFileSync(out, 'utf8'));
    tampered.document.rules[0].decision = 'DENY';
    const tamperedFile = file('tampered.json', JSON.stringify(tampered));
    const t = await cli(['policy', 'validate', '--file', tamperedFile, '--json']);
    expect(t.code).toBe(1);
    expect(JSON.parse(t.stdout)).toMatchObject({ valid: false, reason: 'hash_mismatch' });
    const before = (await stack.db.query(`SELECT count(*)::int AS n FROM events WHERE stream_id = $1`, [`policy/default/${id}`])).rows[0].n;
    const ti = await cli(['policy', 'import', tamperedFile]);
    expect(ti.code).toBe(1);
    expect(ti.stderr).toMatch(/422 unprocessable: the export is refused: the document hashes to/);
    expect((await stack.db.query(`SELECT count(*)::int AS n FROM events WHERE stream_id = $1`, [`policy/default/${id}`])).rows[0].n).toBe(before);
    const imp = await cli(['policy', 'import', out, '--json']);
    expect(imp.code, imp.stderr).toBe(0);
    expect(JSON.parse(imp.stdout)).toMatchObject({ id, version: 4, draft: { imported: true } });

    // Bindings: pull shows the bound policy's active document.
    const agent = `cli-bot-${RUN}`;
    expect((await api(stack, 'POST', `/v1/agents/${agent}/binding`, { policy_id: id })).status).toBe(200);
    const pulled = await cli(['policy', 'pull', '--agent', agent]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(JSON.parse(pulled.stdout)).toMatchObject({ metadata: { id }, rules: [{ decision: 'DENY' }] });
    const none = await cli(['policy', 'pull', '--agent', `nobody-${RUN}`]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/has no bound policy/);
  }, 120_000);

  it('agent push lists violations and exits 1; --force records it; a clean manifest exits 0', async () => {
    const manifest = file('manifest.yaml', `agent: { id: push-bot-${RUN} }\nproviders: [openai]\nmodels: [{ provider: openai, model: gpt-4 }]\ntools: [shell_exec, search_tool]\n`);
    const refused = await cli(['agent', 'push', manifest]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/violation: tool shell_exec: tool shell_exec is on the tools.denied list of policy example v1/);
    expect(refused.stdout).toMatch(/manifest refused: 1 violation\(s\)/);
    const forced = await cli(['agent', 'push', manifest, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(/accepted with 1 violation\(s\) by --force \(recorded\)/);
    expect((await stack.db.query(`SELECT 1 FROM events WHERE type = 'AgentManifestForced' AND data->>'agent_id' = $1`, [`push-bot-${RUN}`])).rowCount).toBe(1);
    const clean = await cli(['agent', 'push', file('clean.json', JSON.stringify({ agent: { id: `push-bot-${RUN}` }, tools: ['search_tool'] }))]);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/manifest ok/);
  }, 60_000);

  it('four-eyes: activate opens a review, the author cannot approve, a second admin can', async () => {
    const tenant = `cli-t-${RUN}`;
    const created = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id: tenant, name: tenant, settings: { policy_four_eyes: true } });
    expect(created.status).toBe(201);
    const admin = created.body.admin_api_key as string;
    const second = await api({ url: stack.url, key: admin }, 'POST', '/v1/principals', { name: 'second', kind: 'person', roles: ['admin'] });
    const pushed = await cli(['policy', 'push', file('fe.yaml', yaml('DENY')), '--json'], admin);
    expect(pushed.code, pushed.stderr).toBe(0);
    const asked = await cli(['policy', 'activate', id, '--json'], admin);
    expect(asked.code, asked.stderr).toBe(0);
    expect(JSON.parse(asked.stdout)).toMatchObject({ status: 'pending_approval', version: 1 });
    const own = await cli(['policy', 'approve', id], admin);
    expect(own.code).toBe(1);
    expect(own.stderr).toMatch(/409 answer_refused: the admin who asked for the activation cannot approve or reject it/);
    const ok = await cli(['policy', 'approve', id, '--comment', 'checked', '--json'], second.body.api_key);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ counted: true, status: 'approved', version: 1 });
  }, 60_000);
});
