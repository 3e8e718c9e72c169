import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendToStream } from '../../services/events/append-to-stream.ts';
import { policyStreamId } from '../../services/events/stream-ids.ts';
import { readStream } from '../../services/events/read-events.ts';
import { withTenant } from '../../services/events/db.ts';
import { activationSigned, compilePolicyVersion } from '../../services/lifecycle/policy-version.ts';
import { sha256Digest } from '../../services/receipts/canonical.ts';
import { loadOrCreateKeyring } from '../../services/receipts/keyring.ts';
import { signDocument } from '../../services/receipts/sign.ts';
import { addPrincipal, api, eventually, ROOT, startTestStack, type TestStack } from './harness.ts';

/**
 * Frozen versions and requirement policies against the real stack:
 * - a version activated under one compiler decides the same live and in `audit replay` after the compiler's
 *   reading of its sentence changed (the activation below carries the compiled form an earlier compiler gave);
 * - seed 003's requirement policy, bound to an agent of a tenant whose default is DENY, ALLOWs a compliant
 *   invoice and DENYs one that fails a requirement, naming it, with reason_code and policy_id on the answer;
 * - seed 002's bare rules list is accepted as it is, its id and name derived and shown back;
 * - attacks: requests built to slip past the requirements, documents that smuggle a default decision or an
 *   inactive flag, and a frozen snapshot altered in the log. Each prints its count and asserts 0 got through.
 */
let stack: TestStack;
const RUN = randomUUID().slice(0, 8);
const as = (key: string) => ({ url: stack.url, key });
const report = (name: string, attempts: number, through: string[]) => {
  console.log(`attack ${name}: ${attempts} attempts, ${through.length} got through`);
  expect(through).toEqual([]);
};

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), ...args], { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function newTenant(defaultDecision: string): Promise<{ id: string; admin: string }> {
  const id = `fz-${RUN}-${randomUUID().slice(0, 6)}`;
  const res = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id, name: id, settings: {}, default_decision: defaultDecision });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id, admin: res.body.admin_api_key };
}

async function principalIn(adminKey: string, name: string, roles: string[]): Promise<{ id: string; key: string }> {
  const res = await api(as(adminKey), 'POST', '/v1/principals', { name, kind: roles.includes('agent') ? 'agent' : 'person', roles });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id: res.body.id, key: res.body.api_key };
}

const SEED_003 = {
  id: 'pol_invoice_approval',
  name: 'Invoice approval',
  description: 'Cap-and-vendor invoice approvals',
  version: 3,
  is_active: true,
  rules: [
    { type: 'deterministic', expr: 'amount < 5000' },
    { type: 'deterministic', expr: "vendor_status == 'approved'" },
    { type: 'deterministic', expr: 'tools_used.contains("policy_check")' },
  ],
};

beforeAll(async () => {
  stack = await startTestStack();
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

describe('a version is frozen: what was compiled at activation decides, live and in replay', () => {
  const SENTENCE = 'Allow ledger_tool up to $100';

  it('decides by the frozen reading after the compiler reads the sentence differently', async () => {
    const document = { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'frozen-ledger', name: 'Frozen ledger' }, scope: { level: 'tenant' }, rules: [{ text: SENTENCE }] };
    const today = compilePolicyVersion(document, 1);
    expect(today.ok).toBe(true);
    if (!today.ok) return;
    expect(today.policy.rules[0]!.condition).toBe('amount <= 100');
    // The compiled form an earlier compiler gave the same sentence: frozen into the activation, signed.
    const snapshot = JSON.parse(JSON.stringify({ ...today.policy, rules: [{ ...today.policy.rules[0]!, condition: 'amount <= 300' }] })) as Record<string, unknown>;
    const keyring = await loadOrCreateKeyring(stack.env['COUNTERSIGN_KEYS_DIR']!);
    const unsigned = { policy_id: 'frozen-ledger', version: 1, scope: { level: 'tenant' }, document, snapshot, hash: sha256Digest(snapshot), document_hash: sha256Digest(document), activated_by: 'earlier-compiler' };
    const sig = signDocument(activationSigned(unsigned), keyring);
    const streamId = policyStreamId('default', 'frozen-ledger');
    await appendToStream(stack.db, { streamId, tenantId: 'default', expectedVersion: 0, recordedAt: new Date(), events: [{ type: 'PolicyActivated', eventId: `${streamId}/1`, data: { ...unsigned, signature: sig.value, signing_key_id: sig.key_id } }] });

    const bot = await addPrincipal(stack, { name: `ledger-bot-${RUN}`, kind: 'agent', roles: ['agent'], agent_id: `ledger-bot-${RUN}` });
    const ask = (amount: number) => api(as(bot.key), 'POST', '/v1/decisions', { agent: { id: `ledger-bot-${RUN}` }, action: { tool: 'ledger_tool' }, context: { amount } });
    // 250 is over today's reading (100) and within the frozen one (300): the frozen one decides.
    const within = await eventually(async () => {
      const r = await ask(250);
      return r.status === 200 && r.body.matched_rule === 'allow-ledger-tool-up-to-100' ? r : undefined;
    }, 30_000, 'the frozen version to decide');
    expect(within.body).toMatchObject({ decision: 'ALLOW', status: 'final', reason_code: 'allowed', policy_id: 'frozen-ledger' });
    const over = await ask(400);
    expect(over.body).toMatchObject({ decision: 'DENY', matched_rule: null, reason_code: 'default_decision', policy_id: null });

    // The auditor's replay re-derives both decisions from the frozen snapshot, with no divergence.
    for (const from of ['postgres', 'kafka']) {
      const out = await eventually(async () => {
        const r = await cli(['audit', 'replay', '--from', from, '--tenant', 'default', '--json'], stack.env);
        const rep = JSON.parse(r.stdout) as { receipts: Array<{ receipt: { decision_id: string } }>; divergences: unknown[]; re_evaluated: number };
        const ids = new Set(rep.receipts.map((x) => x.receipt.decision_id));
        return ids.has(within.body.decision_id) && ids.has(over.body.decision_id) ? { r, rep } : undefined;
      }, 90_000, `replay from ${from}`);
      expect(out.rep.divergences, from).toEqual([]);
      expect(out.r.code, out.r.stderr).toBe(0);
      expect(out.rep.re_evaluated).toBeGreaterThanOrEqual(2);
    }
  }, 240_000);

  it('attack: a frozen snapshot altered in the log never decides (the live path refuses it, replay names it)', async () => {
    const document = { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'tampered-ledger' }, scope: { level: 'tenant' }, rules: [{ name: 'no-ledger', match: { tool: 'tampered_tool' }, decision: 'DENY' }] };
    const c = compilePolicyVersion(document, 1);
    if (!c.ok) throw new Error('does not compile');
    const keyring = await loadOrCreateKeyring(stack.env['COUNTERSIGN_KEYS_DIR']!);
    const t = await newTenant('DENY');
    const bot = await principalIn(t.admin, 'tamper-bot', ['agent']);
    // Signed over the DENY snapshot, then the stored snapshot is swapped for an ALLOW (hash left as signed).
    const snapshot = JSON.parse(JSON.stringify(c.policy)) as Record<string, unknown>;
    const unsigned = { policy_id: 'tampered-ledger', version: 1, scope: { level: 'tenant' }, document, snapshot, hash: sha256Digest(snapshot), document_hash: sha256Digest(document), activated_by: 'x' };
    const sig = signDocument(activationSigned(unsigned), keyring);
    const swapped = { ...snapshot, rules: [{ ...(snapshot['rules'] as Array<Record<string, unknown>>)[0], decision: 'ALLOW' }] };
    const streamId = policyStreamId(t.id, 'tampered-ledger');
    await appendToStream(stack.db, { streamId, tenantId: t.id, expectedVersion: 0, recordedAt: new Date(), events: [{ type: 'PolicyActivated', eventId: `${streamId}/1`, data: { ...unsigned, snapshot: swapped, signature: sig.value, signing_key_id: sig.key_id } }] });
    const through: string[] = [];
    let attempts = 0;
    for (let i = 0; i < 5; i++) {
      attempts++;
      const r = await api(as(bot.key), 'POST', '/v1/decisions', { agent: { id: 'tamper-bot' }, action: { tool: 'tampered_tool' } });
      if (r.status === 200 && r.body.decision !== 'DENY') through.push(`live ${i}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    attempts++;
    const rep = JSON.parse((await cli(['audit', 'replay', '--from', 'postgres', '--tenant', t.id, '--json'], stack.env)).stdout) as { divergences: Array<{ stream_id: string; problem: string }> };
    if (!rep.divergences.some((d) => d.stream_id === streamId && /frozen snapshot does not hash/.test(d.problem))) through.push(`replay did not name the altered snapshot: ${JSON.stringify(rep.divergences)}`);
    report('altered frozen snapshot', attempts, through);
  }, 120_000);
});

describe('requirement policies (seed 003) in a tenant whose default is DENY', () => {
  it('ALLOWs a compliant invoice, DENYs one that fails a requirement naming it, and resists bypasses', async () => {
    const t = await newTenant('DENY');
    const bot = await principalIn(t.admin, 'invoice-bot', ['agent']);
    const created = await api(as(t.admin), 'POST', '/v1/policies', SEED_003);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ id: 'pol_invoice_approval', name: 'Invoice approval' });
    expect((await api(as(t.admin), 'POST', '/v1/policies/pol_invoice_approval/activate')).status).toBe(200);
    expect((await api(as(t.admin), 'POST', '/v1/agents/invoice-bot/binding', { policy_id: 'pol_invoice_approval' })).status).toBe(200);
    const ask = (context: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      api(as(bot.key), 'POST', '/v1/decisions', { agent: { id: 'invoice-bot' }, action: { tool: 'approve_invoice' }, context, ...extra });
    const ok = { amount: 1200, vendor_status: 'approved', tools_used: ['lookup', 'policy_check'] };

    const allowed = await ask(ok);
    expect(allowed.status, JSON.stringify(allowed.body)).toBe(200);
    expect(allowed.body).toMatchObject({ decision: 'ALLOW', status: 'final', matched_rule: 'requirements', reason_code: 'allowed', policy_id: 'pol_invoice_approval' });
    const denied = await ask({ ...ok, amount: 7000 });
    expect(denied.body).toMatchObject({ decision: 'DENY', matched_rule: 'rule-1', reason_code: 'policy_violation', policy_id: 'pol_invoice_approval', reason: 'requirement not met: amount < 5000' });

    // Requests built to slip past a requirement: each must be denied (never allowed by the policy).
    const bypasses: Array<[string, Record<string, unknown>, Record<string, unknown>?]> = [
      ['amount as a string', { ...ok, amount: '1' }],
      ['amount missing', { vendor_status: 'approved', tools_used: ['policy_check'] }],
      ['amount null', { ...ok, amount: null }],
      ['amount NaN-like huge', { ...ok, amount: 1e308 }],
      ['vendor_status as a list', { ...ok, vendor_status: ['approved'] }],
      ['vendor_status in another case', { ...ok, vendor_status: 'Approved' }],
      ['tools_used missing', { amount: 10, vendor_status: 'approved' }],
      ['tools_used with a near name', { ...ok, tools_used: ['policy_check '] }],
      ['a per-call ALLOW rule', { ...ok, amount: 9000 }, { policy_rules: [{ name: 'loosen', decision: 'ALLOW' }] }],
      ['a per-call requirement that holds', { ...ok, amount: 9000 }, { policy_rules: [{ type: 'deterministic', expr: 'true' }] }],
      ['context shadowing a reserved name', { ...ok, amount: 9000, action: { tool: 'x' } }],
    ];
    const through: string[] = [];
    for (const [name, context, extra] of bypasses) {
      const r = await ask(context, extra);
      if (r.status === 200 && r.body.decision !== 'DENY') through.push(`${name}: ${JSON.stringify(r.body)}`);
    }
    report('requirement bypass', bypasses.length, through);

    // The decisions replay from the log with the frozen requirement policy.
    const rep = await eventually(async () => {
      const r = await cli(['audit', 'replay', '--from', 'postgres', '--tenant', t.id, '--json'], stack.env);
      const out = JSON.parse(r.stdout) as { receipts: Array<{ receipt: { decision_id: string } }>; divergences: unknown[] };
      return out.receipts.some((x) => x.receipt.decision_id === allowed.body.decision_id) ? out : undefined;
    }, 60_000, 'replay of the requirement decisions');
    expect(rep.divergences).toEqual([]);
  }, 180_000);

  it('attack: documents that smuggle a default decision, an inactive flag or a platform scope are refused with a located error and write nothing', async () => {
    const t = await newTenant('DENY');
    const docs: Array<[string, unknown]> = [
      ['default_decision ALLOW in a v1 document', { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'smuggle-1' }, default_decision: 'ALLOW', rules: [] }],
      ['default_decision in a seed 003 document', { ...SEED_003, id: 'smuggle-2', default_decision: 'ALLOW' }],
      ['is_active false', { ...SEED_003, id: 'smuggle-3', is_active: false }],
      ['status field on a rule list', { ...SEED_003, id: 'smuggle-4', status: 'active' }],
      ['decision on a requirement', { ...SEED_003, id: 'smuggle-5', rules: [{ type: 'deterministic', expr: 'true', decision: 'ALLOW' }] }],
      ['on_fail ALLOW', { ...SEED_003, id: 'smuggle-6', on_fail: 'ALLOW' }],
      ['scope platform in a tenant document', { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'smuggle-7' }, scope: { level: 'platform' }, rules: [{ name: 'a', decision: 'ALLOW' }] }],
    ];
    const through: string[] = [];
    for (const [name, doc] of docs) {
      const r = await api(as(t.admin), 'POST', '/v1/policies', doc);
      if (r.status !== 422 && r.status !== 400) through.push(`${name}: ${r.status} ${JSON.stringify(r.body)}`);
      else if (!Array.isArray(r.body.errors) || r.body.errors.length === 0) through.push(`${name}: no located error`);
    }
    const platform = await api(as(t.admin), 'POST', '/v1/policies', docs.at(-1)![1]);
    expect(platform.body.errors).toEqual([{ path: 'scope.level', message: expect.stringContaining('authored by platform admins') }]);
    const written = await withTenant(stack.db, t.id, (c) => c.query<{ n: string }>("SELECT count(*) AS n FROM events WHERE tenant_id = $1 AND stream_id LIKE 'policy/%'", [t.id]));
    if (Number(written.rows[0]!.n) !== 0) through.push(`${written.rows[0]!.n} policy events written`);
    report('smuggled policy fields', docs.length, through);
  }, 60_000);
});

describe('seed 002: a bare rules list', () => {
  it('is accepted as YAML as it is, its id and name derived and shown back', async () => {
    const yaml = `rules:\n- name: prod-writes-require-approval-${RUN}\n  match:\n    environment: prod\n    risk_tags: [write]\n  decision: REQUIRE_APPROVAL\n- name: allow-safe-read\n  match:\n    environment: prod\n    risk_tags: [read]\n  decision: ALLOW\n  constraints:\n    max_runtime_sec: 120\n`;
    const r = await api(stack, 'POST', '/v1/policies', yaml, { 'content-type': 'application/yaml' });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body).toMatchObject({ id: `prod-writes-require-approval-${RUN}-allow-safe-read`, name: `Rules: prod-writes-require-approval-${RUN}, allow-safe-read`, status: 'draft' });
    const events = await withTenant(stack.db, 'default', (c) => readStream(c, policyStreamId('default', r.body.id)));
    expect(events.map((e) => e.type)).toEqual(['PolicyDrafted']);
  });
});
