import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, eventually, ROOT, startTestStack, type TestStack } from './harness.ts';

/**
 * Platform policies across two tenants: written and activated once by a platform admin (under the platform's
 * own four-eyes setting when it is on), they decide in every tenant, most restrictive wins over each tenant's
 * own ALLOW, each tenant sees them read-only and changes nothing of them, and the auditor's replay proves
 * which platform version decided a run.
 */
let stack: TestStack;
const RUN = randomBytes(3).toString('hex');
type Who = { url: string; key: string };
const as = (key: string): Who => ({ url: stack.url, key });
const PLATFORM_POLICY = `refund-cap-${RUN}`;
const tenants: Record<'a' | 'b', { id: string; admin: Who; bot: Who; botId: string }> = {} as never;
let platform: Who;
let secondPlatformAdmin: Who;

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), ...args], { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const refundCap = (threshold: number) => ({
  apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: PLATFORM_POLICY, name: 'Refund cap (platform)' }, scope: { level: 'platform' },
  rules: [{ name: 'refunds-over-cap', match: { tool: 'payment_tool', operation: 'Refund' }, condition: `amount > ${threshold}`, decision: 'DENY', reason: `refunds over ${threshold} are never automatic` }],
});
const allowRefunds = { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'refunds-ok', name: 'Refunds' }, scope: { level: 'tenant' }, rules: [{ name: 'allow-refunds', match: { tool: 'payment_tool', operation: 'Refund' }, decision: 'ALLOW' }] };

async function makeTenant(which: 'a' | 'b'): Promise<void> {
  const id = `pp-${which}-${RUN}`;
  const t = await api(platform, 'POST', '/v1/tenants', { id, name: id });
  expect(t.status, JSON.stringify(t.body)).toBe(201);
  const admin = as(t.body.admin_api_key);
  const botId = `pay-bot-${which}`;
  const bot = await api(admin, 'POST', '/v1/principals', { name: botId, kind: 'agent', roles: ['agent'] });
  expect(bot.status, JSON.stringify(bot.body)).toBe(201);
  expect((await api(admin, 'POST', '/v1/policies', allowRefunds)).status).toBe(201);
  expect((await api(admin, 'POST', '/v1/policies/refunds-ok/activate')).status).toBe(200);
  tenants[which] = { id, admin, bot: as(bot.body.api_key), botId };
}

const refund = (which: 'a' | 'b', amount: number) => api(tenants[which].bot, 'POST', '/v1/decisions', { agent: { id: tenants[which].botId }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount } });

beforeAll(async () => {
  stack = await startTestStack();
  platform = as(stack.bootstrapKey);
  // A second platform admin, made by the first (POST /v1/platform/admins), in a tenant of its own.
  expect((await api(platform, 'POST', '/v1/tenants', { id: `pp-ops-${RUN}`, name: 'Platform ops' })).status).toBe(201);
  const second = await api(platform, 'POST', '/v1/platform/admins', { tenant_id: `pp-ops-${RUN}`, name: 'Second platform admin' });
  expect(second.status, JSON.stringify(second.body)).toBe(201);
  secondPlatformAdmin = as(second.body.api_key);
  await makeTenant('a');
  await makeTenant('b');
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

describe('a platform policy decides in every tenant', () => {
  let denied: string;

  it('activated once, it denies refunds over 10000 in both tenants although each tenant ALLOWs them', async () => {
    for (const w of ['a', 'b'] as const) {
      const before = await refund(w, 20_000);
      expect(before.body, w).toMatchObject({ decision: 'ALLOW', matched_rule: 'allow-refunds' });
    }
    const created = await api(platform, 'POST', '/v1/platform/policies', refundCap(10_000));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ id: PLATFORM_POLICY, status: 'draft', scope: { level: 'platform' } });
    const activated = await api(platform, 'POST', `/v1/platform/policies/${PLATFORM_POLICY}/activate`);
    expect(activated.status, JSON.stringify(activated.body)).toBe(200);
    expect(activated.body).toMatchObject({ id: PLATFORM_POLICY, version: 1, status: 'active' });

    for (const w of ['a', 'b'] as const) {
      const over = await eventually(async () => {
        const r = await refund(w, 20_000);
        return r.body.decision === 'DENY' ? r : undefined;
      }, 30_000, `the platform policy to apply in tenant ${w}`);
      expect(over.body).toMatchObject({ decision: 'DENY', matched_rule: 'refunds-over-cap', policy_id: PLATFORM_POLICY, reason_code: 'policy_violation', reason: 'refunds over 10000 are never automatic' });
      expect(over.body.matched_rules).toEqual(expect.arrayContaining([{ policy_id: PLATFORM_POLICY, version: 1, rule: 'refunds-over-cap', decision: 'DENY', scope: 'platform' }]));
      if (w === 'a') denied = over.body.decision_id;
      const small = await refund(w, 500);
      expect(small.body, w).toMatchObject({ decision: 'ALLOW', matched_rule: 'allow-refunds' });
    }

    // The receipt names the platform version that took part, marked as the platform's.
    const receipt = await eventually(async () => {
      const r = await api(tenants.a.admin, 'GET', `/v1/decisions/${denied}/receipt`);
      return r.status === 200 ? r.body : undefined;
    }, 30_000, 'the receipt');
    const signed = receipt.receipt ?? receipt;
    expect(signed.policies).toEqual(expect.arrayContaining([{ policy_id: PLATFORM_POLICY, version: 1, hash: activated.body.hash, scope: 'platform' }]));
    expect(signed.decision).toBe('DENY');
  }, 120_000);

  it('each tenant sees it read-only (list, read, versions, export, simulate)', async () => {
    for (const w of ['a', 'b'] as const) {
      const admin = tenants[w].admin;
      const list = await api(admin, 'GET', '/v1/policies');
      expect(list.body.items).toEqual(expect.arrayContaining([
        expect.objectContaining({ id: 'refunds-ok', scope: { level: 'tenant' } }),
        expect.objectContaining({ id: PLATFORM_POLICY, status: 'active', active_version: 1, scope: { level: 'platform' }, read_only: true, draft: null }),
      ]));
      const one = await api(admin, 'GET', `/v1/policies/${PLATFORM_POLICY}`);
      expect(one.status).toBe(200);
      expect(one.body).toMatchObject({ id: PLATFORM_POLICY, read_only: true, scope: { level: 'platform' }, active: { version: 1, activated_by: 'platform', document: refundCap(10_000) } });
      expect((await api(admin, 'GET', `/v1/policies/${PLATFORM_POLICY}/versions`)).body).toMatchObject({ read_only: true, items: [{ version: 1 }] });
      expect((await api(admin, 'GET', `/v1/policies/${PLATFORM_POLICY}/export`)).body).toMatchObject({ policy_id: PLATFORM_POLICY, version: 1, scope: { level: 'platform' } });
      const sim = await api(tenants[w].bot, 'POST', '/v1/policy/simulate', { request: { action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 12_000 } } });
      expect(sim.body).toMatchObject({ decision: 'DENY', matched_rule: 'refunds-over-cap' });
      expect(sim.body.policies).toEqual(expect.arrayContaining([expect.objectContaining({ policy_id: PLATFORM_POLICY, scope: 'platform' })]));
    }
  });

  it('a tenant cannot edit, deprecate, roll back, clone, delete, activate, validate, bind, review, re-create or import over it (403 platform_policy)', async () => {
    const a = tenants.a.admin;
    const exported = (await api(a, 'GET', `/v1/policies/${PLATFORM_POLICY}/export`)).body;
    const tries: Array<[string, string, unknown, RegExp]> = [
      ['PUT', `/v1/policies/${PLATFORM_POLICY}`, { ...refundCap(10_000_000), scope: { level: 'tenant' } }, /only platform admins can edit it/],
      ['POST', `/v1/policies/${PLATFORM_POLICY}/deprecate`, undefined, /only platform admins can deprecate it/],
      ['POST', `/v1/policies/${PLATFORM_POLICY}/rollback`, { to_version: 1 }, /only platform admins can roll back it/],
      ['POST', `/v1/policies/${PLATFORM_POLICY}/clone`, undefined, /only platform admins can clone it/],
      ['DELETE', `/v1/policies/${PLATFORM_POLICY}`, undefined, /only platform admins can delete it/],
      ['POST', `/v1/policies/${PLATFORM_POLICY}/activate`, undefined, /only platform admins can activate it/],
      ['POST', `/v1/policies/${PLATFORM_POLICY}/validate`, undefined, /only platform admins can validate it/],
      ['POST', `/v1/policies/${PLATFORM_POLICY}/activation/approvals`, { verdict: 'approve' }, /only platform admins can review it/],
      ['POST', `/v1/agents/${tenants.a.botId}/binding`, { policy_id: PLATFORM_POLICY }, /only platform admins can bind it/],
      ['POST', '/v1/policies', { ...refundCap(10_000_000), scope: { level: 'tenant' } }, /only platform admins can replace it/],
      ['POST', '/v1/policies/import', exported, /only platform admins can replace it/],
    ];
    for (const [method, route, body, message] of tries) {
      const r = await api(a, method, route, body);
      expect(r.status, `${method} ${route}: ${JSON.stringify(r.body)}`).toBe(403);
      expect(r.body).toMatchObject({ code: 'platform_policy', policy_id: PLATFORM_POLICY, scope: 'platform' });
      expect(r.body.detail).toMatch(message);
    }
    // Nothing changed: still version 1, active, and still denying.
    expect((await api(platform, 'GET', `/v1/platform/policies/${PLATFORM_POLICY}`)).body).toMatchObject({ status: 'active', active_version: 1, draft: null });
    expect((await refund('a', 20_000)).body.decision).toBe('DENY');
    expect((await api(a, 'GET', '/v1/agents/pay-bot-a/binding')).body).toMatchObject({ policy_id: null });
  });

  it('a tenant admin cannot author, activate or review platform policies, nor change the platform settings (403)', async () => {
    const a = tenants.a.admin;
    const tries: Array<[string, string, unknown]> = [
      ['POST', '/v1/platform/policies', refundCap(1)],
      ['GET', '/v1/platform/policies', undefined],
      ['PUT', `/v1/platform/policies/${PLATFORM_POLICY}`, refundCap(1)],
      ['POST', `/v1/platform/policies/${PLATFORM_POLICY}/activate`, undefined],
      ['POST', `/v1/platform/policies/${PLATFORM_POLICY}/deprecate`, undefined],
      ['POST', `/v1/platform/policies/${PLATFORM_POLICY}/activation/approvals`, { verdict: 'approve' }],
      ['PATCH', '/v1/platform/settings', { policy_four_eyes: false }],
    ];
    for (const [method, route, body] of tries) {
      const r = await api(a, method, route, body);
      expect(r.status, `${method} ${route}`).toBe(403);
      expect(r.body).toMatchObject({ code: 'forbidden', detail: 'requires a platform admin' });
    }
    // A tenant document that says platform is refused where it stands.
    const own = await api(a, 'POST', '/v1/policies', { ...refundCap(1), metadata: { id: `own-${RUN}` } });
    expect(own.status).toBe(400);
    expect(own.body.errors).toEqual([expect.objectContaining({ path: 'scope.level' })]);
  });

  it('a platform policy document must say scope platform', async () => {
    const r = await api(platform, 'POST', '/v1/platform/policies', { ...refundCap(1), metadata: { id: `tenantish-${RUN}` }, scope: { level: 'tenant' } });
    expect(r.status).toBe(400);
    expect(r.body.errors).toEqual([{ path: 'scope.level', message: expect.stringMatching(/scope: \{ level: platform \}/) }]);
  });

  it('the auditor replays the run a platform policy decided, from Postgres and Kafka, and names the platform version', async () => {
    for (const from of ['postgres', 'kafka']) {
      const out = await eventually(async () => {
        const r = await cli(['audit', 'replay', '--from', from, '--tenant', tenants.a.id, '--json'], stack.env);
        const rep = JSON.parse(r.stdout) as { receipts: Array<{ receipt: { decision_id: string } }>; divergences: unknown[]; re_evaluated: number; policy_chains: Record<string, unknown> };
        return rep.receipts.some((x) => x.receipt.decision_id === denied) ? { r, rep } : undefined;
      }, 90_000, `replay from ${from}`);
      expect(out.rep.divergences, from).toEqual([]);
      expect(out.r.code, out.r.stderr).toBe(0);
      expect(out.rep.re_evaluated).toBeGreaterThanOrEqual(1);
      expect(out.rep.policy_chains[`:platform/${PLATFORM_POLICY}`]).toMatchObject({ status: 'active', active_version: 1 });
    }
    const which = await cli(['audit', 'which-policy', denied, '--json'], stack.env);
    expect(which.code, which.stderr).toBe(0);
    expect(JSON.parse(which.stdout)).toMatchObject({ decision: 'DENY', matched_rule: 'refunds-over-cap', warnings: [], policies: expect.arrayContaining([expect.objectContaining({ policy_id: PLATFORM_POLICY, version: 1, scope: 'platform', activation_hash_matches: true })]) });
  }, 240_000);
});

describe('the platform four-eyes setting', () => {
  it('a platform change waits for a second platform admin; the requester and tenant admins cannot answer', async () => {
    const settings = await api(platform, 'PATCH', '/v1/platform/settings', { policy_four_eyes: true });
    expect(settings.status, JSON.stringify(settings.body)).toBe(200);
    expect(settings.body).toMatchObject({ policy_four_eyes: true });
    expect((await api(secondPlatformAdmin, 'GET', '/v1/platform/settings')).body).toMatchObject({ policy_four_eyes: true });

    expect((await api(platform, 'POST', `/v1/platform/policies/${PLATFORM_POLICY}/clone`)).status).toBe(201);
    expect((await api(platform, 'PUT', `/v1/platform/policies/${PLATFORM_POLICY}`, refundCap(5_000))).status).toBe(200);
    const asked = await api(platform, 'POST', `/v1/platform/policies/${PLATFORM_POLICY}/activate`);
    expect(asked.status, JSON.stringify(asked.body)).toBe(202);
    expect(asked.body).toMatchObject({ status: 'pending_approval', version: 2 });

    const own = await api(platform, 'POST', `/v1/platform/policies/${PLATFORM_POLICY}/activation/approvals`, { verdict: 'approve' });
    expect(own.status).toBe(409);
    expect(own.body).toMatchObject({ code: 'answer_refused' });
    expect((await api(tenants.b.admin, 'POST', `/v1/platform/policies/${PLATFORM_POLICY}/activation/approvals`, { verdict: 'approve' })).status).toBe(403);
    expect((await api(tenants.b.admin, 'POST', `/v1/policies/${PLATFORM_POLICY}/activation/approvals`, { verdict: 'approve' })).body).toMatchObject({ code: 'platform_policy' });
    // Still version 1 in force: a 7000 refund is allowed.
    expect((await refund('b', 7_000)).body.decision).toBe('ALLOW');

    const approved = await api(secondPlatformAdmin, 'POST', `/v1/platform/policies/${PLATFORM_POLICY}/activation/approvals`, { verdict: 'approve', comment: 'ok' });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    expect(approved.body).toMatchObject({ counted: true, status: 'approved', version: 2 });
    for (const w of ['a', 'b'] as const) {
      const r = await eventually(async () => {
        const x = await refund(w, 7_000);
        return x.body.decision === 'DENY' ? x : undefined;
      }, 30_000, `version 2 in tenant ${w}`);
      expect(r.body.matched_rules).toEqual(expect.arrayContaining([expect.objectContaining({ policy_id: PLATFORM_POLICY, version: 2, scope: 'platform' })]));
    }
    const versions = await api(platform, 'GET', `/v1/platform/policies/${PLATFORM_POLICY}/versions`);
    expect(versions.body.items.at(-1)).toMatchObject({ version: 2, active: true, approved_by: expect.stringMatching(/^prn_/) });

    // A deprecation waits too.
    const dep = await api(platform, 'POST', `/v1/platform/policies/${PLATFORM_POLICY}/deprecate`);
    expect(dep.status, JSON.stringify(dep.body)).toBe(202);
    const rejected = await api(secondPlatformAdmin, 'POST', `/v1/platform/policies/${PLATFORM_POLICY}/activation/approvals`, { verdict: 'reject', comment: 'keep it' });
    expect(rejected.body).toMatchObject({ counted: true, status: 'rejected' });
    expect((await refund('a', 7_000)).body.decision).toBe('DENY');
  }, 180_000);

  it('the CLI works on platform policies with --platform', async () => {
    const env = { ...stack.env, COUNTERSIGN_URL: stack.url, COUNTERSIGN_API_KEY: stack.bootstrapKey };
    const off = await cli(['platform', 'settings', '--four-eyes', 'off', '--json'], env);
    expect(off.code, off.stderr).toBe(0);
    expect(JSON.parse(off.stdout)).toMatchObject({ policy_four_eyes: false });
    const dep = await cli(['policy', 'deprecate', PLATFORM_POLICY, '--platform', '--json'], env);
    expect(dep.code, dep.stderr).toBe(0);
    expect(JSON.parse(dep.stdout)).toMatchObject({ id: PLATFORM_POLICY, status: 'deprecated' });
    const back = await eventually(async () => {
      const x = await refund('a', 20_000);
      return x.body.decision === 'ALLOW' ? x : undefined;
    }, 30_000, 'the deprecated platform policy to stop applying');
    expect(back.body.matched_rule).toBe('allow-refunds');
    // A tenant's CLI is refused with the platform's reason.
    const tenantCli = await cli(['policy', 'rollback', PLATFORM_POLICY, '--to', '1'], { ...stack.env, COUNTERSIGN_URL: stack.url, COUNTERSIGN_API_KEY: tenants.a.admin.key });
    expect(tenantCli.code).toBe(1);
    expect(tenantCli.stderr).toMatch(/platform policy/);
    const rb = await cli(['policy', 'rollback', PLATFORM_POLICY, '--to', '1', '--platform', '--json'], env);
    expect(rb.code, rb.stderr).toBe(0);
    expect(JSON.parse(rb.stdout)).toMatchObject({ id: PLATFORM_POLICY, version: 3, rolled_back_to: 1 });
  }, 120_000);
});
