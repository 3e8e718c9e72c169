import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activateYaml, addPrincipal, api, eventually, ROOT, startTestStack, type TestStack } from './harness.ts';

// Override settings per tenant (admin-only, an event) and per policy, over the deployment's configuration.

const RUN = randomBytes(4).toString('hex');
const PLAIN = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: ovr-plain, name: No override settings }
scope: { level: tenant }
rules:
  - name: no-plain
    match: { tool: ovr_plain_tool }
    decision: DENY
`;
const OWN = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: ovr-own, name: Its own override settings }
scope: { level: tenant }
override: { groups: [policy-ovr], timeout: 10m }
rules:
  - name: no-own
    match: { tool: ovr_own_tool }
    decision: DENY
`;

let stack: TestStack;
let bot: { id: string; key: string };
beforeAll(async () => {
  stack = await startTestStack();
  await activateYaml(stack, PLAIN);
  await activateYaml(stack, OWN);
  bot = await addPrincipal(stack, { name: 'ovr-bot', kind: 'agent', roles: ['agent'] });
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

const as = (key: string) => ({ url: stack.url, key });
async function deniedThenOverride(tool: string) {
  const res = await api(as(bot.key), 'POST', '/v1/decisions', { action: { tool }, idempotency_key: `${tool}/${RUN}/${randomBytes(3).toString('hex')}` });
  expect(res.body.decision, JSON.stringify(res.body)).toBe('DENY');
  const id = res.body.decision_id as string;
  await eventually(async () => ((await stack.db.query("SELECT 1 FROM events WHERE stream_id = $1 AND type = 'DecisionFinalized'", [`run/${id}`])).rowCount ? true : undefined), 60_000, 'the run');
  const asked = Date.now();
  const o = await api(as(bot.key), 'POST', `/v1/decisions/${id}/override`, { justification: 'customer waiting' });
  expect(o.status, JSON.stringify(o.body)).toBe(202);
  const start = (await stack.db.query<{ data: { start: { windows: Record<string, unknown> } } }>("SELECT data FROM events WHERE stream_id = $1 AND type = 'DecisionRequested'", [`run/${id}`])).rows[0]!.data.start.windows;
  return { groups: o.body.groups as string[], waitsSec: (Date.parse(o.body.deadline) - asked) / 1000, windows: start };
}

describe('override settings per tenant and per policy', () => {
  it('deployment defaults, then the tenant settings (admin only, recorded as TenantChanged), then the policy override block', async () => {
    expect((await deniedThenOverride('ovr_plain_tool')).groups).toEqual(['admins']);

    const approver = await addPrincipal(stack, { name: 'ovr-approver', roles: ['approver'], groups: ['tenant-ovr'] });
    const settings = { override_groups: ['tenant-ovr'], override_timeout: '2h', override_window: '3h' };
    for (const key of [approver.key, bot.key]) expect((await api(as(key), 'PATCH', '/v1/tenants/default', { settings })).status).toBe(403);
    const bad = await api(stack, 'PATCH', '/v1/tenants/default', { settings: { override_groups: ['no spaces'], override_timeout: '0h' } });
    expect(bad.status).toBe(400);
    expect(bad.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['body.settings.override_groups.0', 'body.settings.override_timeout']);
    const ok = await api(stack, 'PATCH', '/v1/tenants/default', { settings });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    const changed = await stack.db.query<{ data: { after: { settings: unknown } } }>("SELECT data FROM events WHERE stream_id = 'tenant/default' AND type = 'TenantChanged' ORDER BY position DESC LIMIT 1");
    expect(changed.rows[0]!.data.after.settings).toEqual(settings);

    // The API's cached effective set is dropped on the tenant's change: the next run starts with the new settings.
    const plain = await eventually(async () => {
      const r = await deniedThenOverride('ovr_plain_tool');
      return r.groups[0] === 'tenant-ovr' ? r : undefined;
    }, 30_000, 'the tenant settings');
    expect(plain.windows).toMatchObject({ override_groups: ['tenant-ovr'], override_timeout_sec: 7200, override_sec: 10_800 });
    expect(plain.waitsSec).toBeGreaterThan(7000);

    // The policy's own block wins field by field; the tenant's window still applies.
    const own = await deniedThenOverride('ovr_own_tool');
    expect(own.groups).toEqual(['policy-ovr']);
    expect(own.windows).toMatchObject({ override_groups: ['policy-ovr'], override_timeout_sec: 600, override_sec: 10_800 });
    expect(own.waitsSec).toBeLessThan(601);
  }, 180_000);
});

describe('four-eyes reviews in the inbox', () => {
  it("an activation review is in the inbox of each admin who may answer it, not the requester's nor an approver's, until answered", async () => {
    const t = await api(as(stack.bootstrapKey), 'POST', '/v1/tenants', { id: `inbox-${RUN}`, name: 'inbox', settings: { policy_four_eyes: true } });
    expect(t.status).toBe(201);
    const admin = t.body.admin_api_key as string;
    const second = await api(as(admin), 'POST', '/v1/principals', { name: 'bea', kind: 'person', roles: ['admin'] });
    const approver = await api(as(admin), 'POST', '/v1/principals', { name: 'carl', kind: 'person', roles: ['approver'], groups: ['finance'] });
    const id = `rev-${RUN}`;
    const doc = { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: id }, rules: [{ name: 'gate', match: { tool: 'rev_tool' }, decision: 'DENY' }] };
    expect((await api(as(admin), 'POST', '/v1/policies', doc)).status).toBe(201);
    // A review timeout recorded before the settings' bounds (the API refuses 60d today) falls back to the 72h default.
    await stack.db.query(`UPDATE tenants SET settings = settings || '{"policy_activation_timeout": "60d"}' WHERE id = $1`, [`inbox-${RUN}`]);
    const at = Date.now();
    const asked = await api(as(admin), 'POST', `/v1/policies/${id}/activate`);
    expect(asked.status).toBe(202);
    expect(Math.round((Date.parse(asked.body.deadline) - at) / 3_600_000)).toBe(72);

    const inbox = async (key: string) => {
      const res = await api(as(key), 'GET', '/v1/approvals');
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.items as Array<Record<string, unknown>>;
    };
    const items = await inbox(second.body.api_key);
    expect(items).toEqual([{
      kind: 'activation_review', review_id: asked.body.review_id, policy_id: id, version: 1, change: 'activate', requested_by: asked.body.requested_by,
      authors: asked.body.authors, document_hash: expect.stringMatching(/^sha256:/), expected_loosening: [], deadline: asked.body.deadline,
    }]);
    expect(await inbox(admin)).toEqual([]); // the requester and author
    expect(await inbox(approver.body.api_key)).toEqual([]); // not an admin
    // Through the CLI too.
    const ok = await api(as(second.body.api_key), 'POST', `/v1/policies/${id}/activation/approvals`, { verdict: 'approve', review_id: asked.body.review_id });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(await inbox(second.body.api_key)).toEqual([]);
  }, 120_000);
});

describe("the tenant's approval_timeout", () => {
  const cli = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), ...args], { cwd: ROOT, env: { ...process.env, ...stack.env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });

  it('stands in for the 1h of every rule that names no timeout, never for a written one; each run keeps the setting it started with; replay agrees', async () => {
    const tenant = `apt-${RUN}`;
    const t = await api(as(stack.bootstrapKey), 'POST', '/v1/tenants', { id: tenant, name: 'apt', default_decision: 'REQUIRE_APPROVAL', settings: { approval_timeout: '2h' } });
    expect(t.status, JSON.stringify(t.body)).toBe(201);
    const admin = as(t.body.admin_api_key as string);
    const doc = {
      apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'apt', name: 'apt' },
      rules: [
        { name: 'plain', match: { tool: 'apt_plain' }, decision: 'REQUIRE_APPROVAL', approval: { approvers: ['finance'] } },
        { name: 'written', match: { tool: 'apt_written' }, decision: 'REQUIRE_APPROVAL', approval: { approvers: ['finance'], timeout: '30m' } },
        { name: 'ladder', match: { tool: 'apt_ladder' }, decision: 'REQUIRE_APPROVAL', approval: { levels: [{ approvers: ['finance'], timeout: '10m' }, { approvers: ['cfo'] }] } },
      ],
    };
    expect((await api(admin, 'POST', '/v1/policies', doc)).status).toBe(201);
    expect((await api(admin, 'POST', '/v1/policies/apt/activate')).status).toBe(200);
    const agent = await api(admin, 'POST', '/v1/principals', { name: 'apt-bot', kind: 'agent', roles: ['agent'] });
    const bot = as(agent.body.api_key as string);

    const ask = async (tool: string) => {
      const asked = Date.now();
      const r = await api(bot, 'POST', '/v1/decisions', { action: { tool }, idempotency_key: `${tool}/${randomBytes(4).toString('hex')}` });
      expect(r.body.status, JSON.stringify(r.body)).toBe('pending_approval');
      const id = r.body.decision_id as string;
      const requested = await eventually(async () => (await stack.db.query<{ data: { deadline: string; requirements?: Array<{ deadline: string }> } }>(
        "SELECT data FROM events WHERE stream_id = $1 AND type = 'ApprovalRequested'", [`run/${id}`])).rows[0]?.data, 60_000, 'the round');
      const start = (await stack.db.query<{ data: { start: { windows: Record<string, unknown> } } }>("SELECT data FROM events WHERE stream_id = $1 AND type = 'DecisionRequested'", [`run/${id}`])).rows[0]!.data.start.windows;
      const evaluation = (await stack.db.query<{ data: { evaluation: { approval: Record<string, unknown> } } }>("SELECT data FROM events WHERE stream_id = $1 AND type = 'PolicyEvaluated'", [`run/${id}`])).rows[0]!.data.evaluation;
      return { id, waitsMin: Math.round((Date.parse(requested.deadline) - asked) / 60_000), windows: start, approval: evaluation.approval };
    };

    const plain = await ask('apt_plain');
    expect(plain.waitsMin).toBe(120);
    expect(plain.windows['approval_timeout_sec']).toBe(7200);
    expect(plain.approval).toMatchObject({ timeout: '2h', timeout_sec: 7200, timeout_defaulted: true });
    expect((await ask('apt_written')).waitsMin).toBe(30);
    // Nothing matched: the tenant's default decision asks the built-in group, for the tenant's time too.
    const unmatched = await ask('apt_unmatched');
    expect(unmatched.waitsMin).toBe(120);
    expect(unmatched.approval).toMatchObject({ approvers: ['approvers'], timeout_sec: 7200, timeout_defaulted: true });
    const ladder = await ask('apt_ladder');
    expect(ladder.waitsMin).toBe(10);
    expect((ladder.approval['levels'] as Array<{ timeout_sec: number }>).map((l) => l.timeout_sec)).toEqual([600, 7200]);

    // Simulation shows the route a run started now would take.
    const sim = await api(admin, 'POST', '/v1/policy/simulate', { request: { agent: { id: 'apt-bot' }, action: { tool: 'apt_ladder' } } });
    expect(sim.status, JSON.stringify(sim.body)).toBe(200);
    const route = sim.body.approval_route[0];
    const [l0, l1] = route.levels as Array<{ starts_at: string; deadline: string }>;
    expect((Date.parse(l0!.deadline) - Date.parse(l0!.starts_at)) / 1000).toBe(600);
    expect((Date.parse(l1!.deadline) - Date.parse(l1!.starts_at)) / 1000).toBe(7200);

    // A changed setting applies to runs started afterwards; a started run keeps its own.
    expect((await api(admin, 'PATCH', `/v1/tenants/${tenant}`, { settings: { approval_timeout: '3h' } })).status).toBe(200);
    const later = await eventually(async () => {
      const r = await ask('apt_plain');
      return r.waitsMin === 180 ? r : undefined;
    }, 30_000, 'the changed setting');
    expect(later.approval).toMatchObject({ timeout: '3h', timeout_sec: 10_800 });
    const first = (await stack.db.query<{ data: { deadline: string } }>("SELECT data FROM events WHERE stream_id = $1 AND type = 'ApprovalRequested'", [`run/${plain.id}`])).rows;
    expect(first).toHaveLength(1);

    // The auditor re-derives each run's approval settings from its snapshot and the setting its signed start recorded.
    const out = await eventually(async () => {
      const r = await cli(['audit', 'replay', '--from', 'postgres', '--json']);
      const report = JSON.parse(r.stdout) as { divergences: unknown[]; receipts: unknown[]; re_evaluated: number };
      return r.code === 0 || report.divergences.length > 0 ? { r, report } : undefined;
    }, 60_000, 'audit replay');
    expect(out.report.divergences).toEqual([]);
    expect(out.r.code, out.r.stderr).toBe(0);
  }, 180_000);
});
