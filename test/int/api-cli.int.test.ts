import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../services/cli/main.ts';
import { addPrincipal, api, ROOT, startTestStack, type TestStack } from './harness.ts';

let stack: TestStack;
const dir = mkdtempSync(path.join(tmpdir(), 'cs-cli-'));
const configFile = path.join(dir, 'config.json');

/** Runs `countersign …` as a user would, with only the config file to find the API (no env key). */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const base: Record<string, string | undefined> = { ...process.env, COUNTERSIGN_CONFIG: configFile, ...env };
    delete base['COUNTERSIGN_URL'];
    delete base['COUNTERSIGN_API_KEY'];
    execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), ...args], { cwd: ROOT, env: { ...base, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  stack = await startTestStack();
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

describe('countersign CLI', () => {
  it('has --help for every command, grouped by audience', async () => {
    const leaves: string[][] = [];
    const walk = (cmd: Command, at: string[]) => {
      for (const c of cmd.commands) {
        if (c.name() === 'help') continue;
        leaves.push([...at, c.name()]);
        walk(c, [...at, c.name()]);
      }
    };
    walk(buildProgram(), []);
    for (const want of [['decisions', 'watch'], ['approvals', 'approve'], ['keys', 'revoke'], ['tenants', 'create'], ['principals', 'update'], ['login'], ['policy'], ['audit']]) {
      expect(leaves).toContainEqual(want);
    }
    for (const leaf of leaves) {
      const program = buildProgram();
      let out = '';
      program.configureOutput({ writeOut: (s) => { out += s; }, writeErr: (s) => { out += s; } });
      const walkOut = (c: Command) => { c.configureOutput({ writeOut: (s) => { out += s; }, writeErr: (s) => { out += s; } }); c.commands.forEach(walkOut); };
      walkOut(program);
      const code = await program.parseAsync(['node', 'countersign', ...leaf, '--help']).then(() => 0, (e: { exitCode?: number }) => e.exitCode ?? 1);
      expect({ leaf, code, usage: /Usage: countersign/.test(out) }).toEqual({ leaf, code: 0, usage: true });
    }
    const top = await cli(['--help']);
    expect(top.stdout).toMatch(/Admins:[\s\S]*keys[\s\S]*principals[\s\S]*tenants/);
  });

  it('refuses remote commands before login with exit 2, and logs in with a key file (config 0600)', async () => {
    const before = await cli(['decisions', 'list']);
    expect(before.code).toBe(2);
    expect(before.stderr).toMatch(/not logged in/);
    const keyFile = path.join(dir, 'key');
    writeFileSync(keyFile, `${stack.key}\n`, { mode: 0o600 });
    const login = await cli(['login', '--url', stack.url, '--key-file', keyFile]);
    expect(login.stderr).toBe('');
    expect(login.code).toBe(0);
    expect(login.stdout).toMatch(/logged in to .* as test operator/);
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(configFile, 'utf8'))).toEqual({ url: stack.url, api_key: stack.key });
    const bad = await cli(['login', '--url', stack.url, '--key', `cs_zzzzzzzzzzzz_${'A'.repeat(43)}`]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/401 unauthorized/);
  });

  it('manages members, keys and tenants; tables by default, --json everywhere', async () => {
    const created = await cli(['principals', 'create', '--name', 'ops-bot', '--kind', 'agent', '--roles', 'agent', '--json']);
    expect(created.code).toBe(0);
    const { id, api_key: key } = JSON.parse(created.stdout) as { id: string; api_key: string };
    const listed = await cli(['principals', 'list', '--kind', 'agent']);
    expect(listed.stdout).toMatch(/^ID\s+NAME\s+KIND/m);
    expect(listed.stdout).toContain(id);
    const newKey = await cli(['keys', 'create', '--principal', id, '--name', 'second', '--json']);
    const keyId = (JSON.parse(newKey.stdout) as { id: string }).id;
    const keys = JSON.parse((await cli(['keys', 'list', '--principal', id, '--json'])).stdout) as Array<{ id: string; status: string }>;
    expect(keys.map((k) => k.status)).toEqual(['active', 'active']);
    expect((await cli(['keys', 'revoke', keyId])).code).toBe(0);
    const afterRevoke = JSON.parse((await cli(['keys', 'list', '--principal', id, '--json'])).stdout) as Array<{ id: string; status: string }>;
    expect(afterRevoke.find((k) => k.id === keyId)?.status).toBe('revoked');
    expect((await api({ url: stack.url, key }, 'GET', '/v1/me')).status).toBe(200);

    // Tenants are the platform admin's (the bootstrap key), not a tenant admin's.
    const platform = { COUNTERSIGN_URL: stack.url, COUNTERSIGN_API_KEY: stack.bootstrapKey };
    expect((await cli(['tenants', 'create', 'cli-no', '--name', 'No'])).code).toBe(1);
    const tenant = await cli(['tenants', 'create', 'cli-co', '--name', 'CLI Co'], platform);
    expect(tenant.code).toBe(0);
    expect(tenant.stdout.trim()).toMatch(/^cs_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    expect((await cli(['tenants', 'list'], platform)).stdout).toMatch(/cli-co\s+CLI Co\s+DENY/);
    // A second platform admin, in that tenant: its key (printed once) is a platform admin's; a tenant admin cannot make one.
    expect((await cli(['platform', 'admins', 'create', '--tenant', 'cli-co', '--name', 'Ops two'])).code).toBe(1);
    const second = await cli(['platform', 'admins', 'create', '--tenant', 'cli-co', '--name', 'Ops two'], platform);
    expect(second.code, second.stderr).toBe(0);
    const secondMe = await api({ url: stack.url, key: second.stdout.trim() }, 'GET', '/v1/me');
    expect(secondMe.body).toMatchObject({ tenant_id: 'cli-co', platform_admin: true });
    // Listed, then its flag taken: it is a member of cli-co still, no longer a platform admin.
    const admins = JSON.parse((await cli(['platform', 'admins', 'list', '--json'], platform)).stdout) as Array<{ principal_id: string; tenant_id: string }>;
    expect(admins.map((a) => a.tenant_id)).toEqual(['default', 'cli-co']);
    expect((await cli(['platform', 'admins', 'revoke', secondMe.body.id, '--tenant', 'cli-co'])).code).toBe(1); // a tenant admin
    const revoked = await cli(['platform', 'admins', 'revoke', secondMe.body.id, '--tenant', 'cli-co', '--json'], platform);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(JSON.parse(revoked.stdout)).toEqual({ principal_id: secondMe.body.id, tenant_id: 'cli-co', platform_admin: false });
    expect((await api({ url: stack.url, key: second.stdout.trim() }, 'GET', '/v1/me')).body).toMatchObject({ tenant_id: 'cli-co', platform_admin: false });
    expect(JSON.parse((await cli(['tenants', 'set', '--default-decision', 'REQUIRE_APPROVAL', '--json'])).stdout)).toMatchObject({ id: 'default', default_decision: 'REQUIRE_APPROVAL' });
    expect((await cli(['tenants', 'show'])).stdout).toMatch(/default_decision\s+REQUIRE_APPROVAL/);
    const refused = await cli(['principals', 'create', '--name', 'x', '--kind', 'robot', '--roles', 'agent']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/400 validation_failed[\s\S]*kind/);
  });

  it('lists, shows and watches decisions; watch exits 1 while still pending', async () => {
    const pending = await api(stack, 'POST', '/v1/decisions', { agent: { id: 'support-bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 900 } });
    expect(pending.body.status).toBe('pending_approval');
    const id = pending.body.decision_id as string;
    const list = JSON.parse((await cli(['decisions', 'list', '--json'])).stdout) as Array<{ decision_id: string }>;
    expect(list.map((d) => d.decision_id)).toContain(id);
    expect((await cli(['decisions', 'list', '--status', 'pending_approval'])).stdout).toContain(id);
    expect((await cli(['decisions', 'show', id])).stdout).toMatch(/decision\s+REQUIRE_APPROVAL/);
    const watch = await cli(['decisions', 'watch', id, '--timeout', '1', '--json']);
    expect(watch.code).toBe(1);
    expect(JSON.parse(watch.stdout)).toMatchObject({ decision_id: id, status: 'pending_approval' });
    const missing = await cli(['decisions', 'show', `dec_${'0'.repeat(32)}`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/404 not_found/);
    const down = await cli(['decisions', 'list'], { COUNTERSIGN_URL: 'http://127.0.0.1:9', COUNTERSIGN_API_KEY: stack.key });
    expect(down.code).toBe(3);
  });

  it('an answer given with `approvals approve` is recorded as channel cli; the API takes no slack or email label', async () => {
    const bot = await addPrincipal(stack, { name: 'cli-refund-bot', kind: 'agent', roles: ['agent'] });
    const clerk = await addPrincipal(stack, { name: 'cli-clerk', roles: ['approver'], groups: ['finance'] });
    const ask = async () => (await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'cli-refund-bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 900 } })).body.decision_id as string;
    const id = await ask();
    const answered = await cli(['approvals', 'approve', id, '--json'], { COUNTERSIGN_URL: stack.url, COUNTERSIGN_API_KEY: clerk.key });
    expect(answered.code, answered.stderr).toBe(0);
    const rows = await stack.db.query<{ data: { channel: string; approver_id: string } }>("SELECT data FROM events WHERE stream_id = $1 AND type = 'ApprovalGranted'", [`run/${id}`]);
    expect(rows.rows.map((r) => r.data)).toEqual([expect.objectContaining({ channel: 'cli', approver_id: clerk.id })]);
    const other = await ask();
    for (const channel of ['slack', 'email']) {
      const forged = await api({ url: stack.url, key: clerk.key }, 'POST', `/v1/decisions/${other}/approvals`, { verdict: 'approve', channel });
      expect(forged.status).toBe(400);
    }
    expect((await stack.db.query("SELECT 1 FROM events WHERE stream_id = $1 AND type = 'ApprovalGranted'", [`run/${other}`])).rowCount).toBe(0);
  });
});
