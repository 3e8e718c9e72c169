import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInMemoryKeyring } from '../../services/receipts/keyring.ts';
import { signDocument } from '../../services/receipts/sign.ts';
import { exportSigned } from '../../services/lifecycle/policy-export.ts';
import { appendToStream } from '../../services/events/append-to-stream.ts';
import { createPool } from '../../services/events/db.ts';
import { addPrincipal, api, eventually, ROOT, startTestStack, type TestStack } from './harness.ts';

/**
 * The policy lifecycle beyond the basic transitions (issue 7): four-eyes activation as a review workflow,
 * activation gates (required validation, unexpected loosening), signed export/import, clone from a chosen
 * version, the agent manifest check, every refusal as precise problem+json with no event written, and the
 * auditor's replay rebuilding each policy chain from Kafka.
 */
let stack: TestStack;
const RUN = randomUUID().slice(0, 8);
const as = (key: string) => ({ url: stack.url, key });
const policyDoc = (id: string, decision: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: id }, rules: [{ name: 'gate', match: { tool: `${id}_tool` }, decision }], ...extra,
});
const count = async () => Number((await stack.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM events WHERE stream_id LIKE 'policy/%' OR stream_id LIKE 'agent/%'`)).rows[0]!.n);
const eventsOf = async (type: string, policyId: string) => (await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE type = $1 AND data->>'policy_id' = $2 ORDER BY position`, [type, policyId])).rows.map((r) => r.data);

/** A refusal: the status and code, problem+json, a detail that says why, and not one event written. */
async function refused(key: string, method: string, route: string, body: unknown, status: number, code: string, detail: RegExp): Promise<any> {
  const before = await count();
  const res = await api(as(key), method, route, body);
  expect({ route, status: res.status, code: res.body?.code }).toEqual({ route, status, code });
  expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
  expect(res.body.detail).toMatch(detail);
  expect(await count()).toBe(before);
  return res.body;
}

async function newTenant(settings: Record<string, unknown>): Promise<{ id: string; admin: string }> {
  const id = `t-${RUN}-${randomUUID().slice(0, 6)}`;
  const res = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id, name: id, settings });
  expect(res.status).toBe(201);
  return { id, admin: res.body.admin_api_key };
}

async function principalIn(adminKey: string, name: string, roles: string[]): Promise<{ id: string; key: string }> {
  const res = await api(as(adminKey), 'POST', '/v1/principals', { name, kind: roles.includes('agent') ? 'agent' : 'person', roles });
  expect(res.status).toBe(201);
  return { id: res.body.id, key: res.body.api_key };
}

beforeAll(async () => {
  stack = await startTestStack();
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

describe('four-eyes activation (tenant setting policy_four_eyes)', () => {
  it('opens a review; only a second admin who wrote nothing of the change activates it; refusals count nothing', async () => {
    const t = await newTenant({ policy_four_eyes: true });
    const bea = await principalIn(t.admin, 'bea', ['admin']);
    const carl = await principalIn(t.admin, 'carl', ['author']);
    const dana = await principalIn(t.admin, 'dana', ['admin']);
    const id = `fe-${RUN}`;
    expect((await api(as(t.admin), 'POST', '/v1/policies', policyDoc(id, 'DENY'))).status).toBe(201);

    const asked = await api(as(t.admin), 'POST', `/v1/policies/${id}/activate`);
    expect(asked.status).toBe(202);
    expect(asked.body).toMatchObject({ id, version: 1, status: 'pending_approval' });
    expect(asked.body.review_id).toMatch(/^policy-review\//);
    expect((await eventsOf('PolicyActivationRequested', id))).toHaveLength(1);
    const read = await api(as(t.admin), 'GET', `/v1/policies/${id}`);
    expect(read.body).toMatchObject({ status: 'draft', active_version: null, activation_review: { status: 'open', review_id: asked.body.review_id } });

    // The author cannot approve; a non-admin cannot answer; the draft cannot change or be activated again meanwhile.
    await refused(t.admin, 'POST', `/v1/policies/${id}/activation/approvals`, { verdict: 'approve' }, 409, 'answer_refused', /cannot approve|second admin/);
    await refused(carl.key, 'POST', `/v1/policies/${id}/activation/approvals`, { verdict: 'approve' }, 403, 'forbidden', /role/);
    await refused(t.admin, 'PUT', `/v1/policies/${id}`, policyDoc(id, 'ALLOW'), 409, 'conflict', /waiting for a second admin/);
    await refused(t.admin, 'DELETE', `/v1/policies/${id}`, undefined, 409, 'conflict', /waiting for a second admin/);
    await refused(t.admin, 'POST', `/v1/policies/${id}/activate`, undefined, 409, 'conflict', /waiting for a second admin/);
    await refused(bea.key, 'POST', `/v1/policies/${id}/activation/approvals`, { verdict: 'approve', review_id: 'policy-review-other' }, 409, 'answer_refused', /review policy-review-other/);

    const ok = await api(as(bea.key), 'POST', `/v1/policies/${id}/activation/approvals`, { verdict: 'approve', comment: 'looks right' });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ counted: true, status: 'approved', version: 1 });
    const versions = await api(as(t.admin), 'GET', `/v1/policies/${id}/versions`);
    expect(versions.body.items).toEqual([expect.objectContaining({ version: 1, approved_by: bea.id, active: true })]);
    const [activated] = await eventsOf('PolicyActivated', id);
    expect(activated).toMatchObject({ version: 1, approved_by: bea.id, review_id: asked.body.review_id });
    expect(activated.signature).toBeTruthy();
    await refused(dana.key, 'POST', `/v1/policies/${id}/activation/approvals`, { verdict: 'approve' }, 409, 'answer_refused', /already approved/);
    // The answer event records where it was given: the API by default.
    expect(await eventsOf('PolicyActivationApproved', id)).toEqual([expect.objectContaining({ by: bea.id, comment: 'looks right', channel: 'api' })]);

    // Round two: bea edits the clone, so bea is an author now; dana rejects.
    expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/clone`)).status).toBe(201);
    expect((await api(as(bea.key), 'PUT', `/v1/policies/${id}`, policyDoc(id, 'ALLOW'))).status).toBe(200);
    const second = await api(as(t.admin), 'POST', `/v1/policies/${id}/activate`);
    expect(second.status).toBe(202);
    expect(second.body.authors).toEqual(expect.arrayContaining([bea.id]));
    await refused(bea.key, 'POST', `/v1/policies/${id}/activation/approvals`, { verdict: 'approve' }, 409, 'answer_refused', /author of the change/);
    // Slack and email answers come through their own routes: the API does not take their label.
    for (const channel of ['slack', 'email', 'fax']) {
      const bad = await api(as(dana.key), 'POST', `/v1/policies/${id}/activation/approvals`, { verdict: 'reject', channel });
      expect(bad.status).toBe(400);
      expect(bad.body.errors.map((e: { path: string }) => e.path)).toEqual(['body.channel']);
    }
    const no = await api(as(dana.key), 'POST', `/v1/policies/${id}/activation/approvals`, { verdict: 'reject', comment: 'not now', channel: 'cli' });
    expect(no.status).toBe(200);
    expect(no.body).toMatchObject({ counted: true, status: 'rejected', version: 2 });
    expect(await eventsOf('PolicyActivationRejected', id)).toEqual([expect.objectContaining({ by: dana.id, comment: 'not now', version: 2, channel: 'cli' })]);
    const after = await api(as(t.admin), 'GET', `/v1/policies/${id}`);
    expect(after.body).toMatchObject({ active_version: 1, draft: { version: 2 }, activation_review: { status: 'rejected', rejected_by: dana.id } });
    await refused(dana.key, 'POST', `/v1/policies/${id}/activation/approvals`, { verdict: 'approve' }, 409, 'answer_refused', /already rejected/);
  }, 120_000);

  it('a review no second admin answers expires, as an event, and activates nothing', async () => {
    const t = await newTenant({ policy_four_eyes: true, policy_activation_timeout: '2s' });
    const id = `fx-${RUN}`;
    expect((await api(as(t.admin), 'POST', '/v1/policies', policyDoc(id, 'DENY'))).status).toBe(201);
    expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/activate`)).status).toBe(202);
    await eventually(async () => ((await eventsOf('PolicyActivationExpired', id)).length === 1 ? true : undefined), 30_000, 'expiry');
    const s = await api(as(t.admin), 'GET', `/v1/policies/${id}`);
    expect(s.body).toMatchObject({ status: 'draft', active_version: null, activation_review: { status: 'expired' } });
    // The draft may be edited again, and asked for again.
    expect((await api(as(t.admin), 'PUT', `/v1/policies/${id}`, policyDoc(id, 'ALLOW'))).status).toBe(200);
  }, 60_000);
});

describe('activation gates (policy_require_validation, policy_refuse_loosening)', () => {
  it('refuses an unvalidated draft and unexpected loosening; declared loosening goes through', async () => {
    const t = await newTenant({});
    const agent = await principalIn(t.admin, 'gate-bot', ['agent']);
    const id = `gate-${RUN}`;
    expect((await api(as(t.admin), 'POST', '/v1/policies', policyDoc(id, 'DENY'))).status).toBe(201);
    expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/activate`)).status).toBe(200);
    expect((await api(as(t.admin), 'PATCH', `/v1/tenants/${t.id}`, { settings: { policy_refuse_loosening: true } })).status).toBe(200);
    const run = await api(as(agent.key), 'POST', '/v1/decisions', { agent: { id: 'gate-bot' }, action: { tool: `${id}_tool` }, idempotency_key: randomUUID() });
    expect(run.body).toMatchObject({ decision: 'DENY', matched_rule: 'gate' });
    await eventually(async () => ((await stack.db.query(`SELECT 1 FROM events WHERE stream_id = $1 AND type = 'PolicyEvaluated'`, [`run/${run.body.decision_id}`])).rowCount ? true : undefined));

    expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/clone`)).status).toBe(201);
    expect((await api(as(t.admin), 'PUT', `/v1/policies/${id}`, policyDoc(id, 'ALLOW'))).status).toBe(200);
    await refused(t.admin, 'POST', `/v1/policies/${id}/activate`, undefined, 409, 'conflict', /has not been validated/);
    const v = await api(as(t.admin), 'POST', `/v1/policies/${id}/validate`);
    expect(v.status).toBe(200);
    expect(v.body.by_rule.gate).toMatchObject({ looser: 1 });
    const p = await refused(t.admin, 'POST', `/v1/policies/${id}/activate`, { expected_loosening: ['other-rule'] }, 409, 'conflict', /looser decisions by gate \(1\)/);
    expect(p.looser).toEqual([{ rule: 'gate', looser: 1 }]);
    // An edit drops the validation: the new document must be validated again.
    expect((await api(as(t.admin), 'PUT', `/v1/policies/${id}`, policyDoc(id, 'ALLOW', { metadata: { id, name: 'renamed' } }))).status).toBe(200);
    await refused(t.admin, 'POST', `/v1/policies/${id}/activate`, { expected_loosening: ['gate'] }, 409, 'conflict', /has not been validated/);
    expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/validate`)).status).toBe(200);
    const ok = await api(as(t.admin), 'POST', `/v1/policies/${id}/activate`, { expected_loosening: ['gate'] });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ version: 2, status: 'active' });
  }, 90_000);
});

describe('clone from a chosen version; refusals of the bad-input list', () => {
  it('clones any activated version with lineage; every refusal is precise and writes nothing', async () => {
    const id = `cl-${RUN}`;
    const key = stack.key;
    expect((await api(stack, 'POST', '/v1/policies', policyDoc(id, 'DENY'))).status).toBe(201);
    expect((await api(stack, 'POST', `/v1/policies/${id}/activate`)).status).toBe(200);
    await refused(key, 'PUT', `/v1/policies/${id}`, policyDoc(id, 'ALLOW'), 409, 'conflict', /no draft; an active version is immutable/);
    await refused(key, 'DELETE', `/v1/policies/${id}`, undefined, 409, 'conflict', /only drafts can be deleted/);
    await refused(key, 'POST', `/v1/policies/${id}/rollback`, { to_version: 9 }, 404, 'not_found', /has no version 9/);
    await refused(key, 'POST', `/v1/policies/${id}/clone`, { from_version: 7 }, 404, 'not_found', /has no version 7/);
    expect((await api(stack, 'POST', `/v1/policies/${id}/clone`)).status).toBe(201);
    await refused(key, 'PUT', `/v1/policies/${id}`, policyDoc(id, 'ALLOW', { scope: { level: 'agent', agent: 'x' } }), 409, 'conflict', /scope of policy .* is fixed after its first activation/);
    expect((await api(stack, 'PUT', `/v1/policies/${id}`, policyDoc(id, 'ALLOW'))).status).toBe(200);
    expect((await api(stack, 'POST', `/v1/policies/${id}/activate`)).status).toBe(200);
    const c = await api(stack, 'POST', `/v1/policies/${id}/clone`, { from_version: 1 });
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ version: 3, draft: { cloned_from: 1 } });
    expect(c.body.document.rules[0].decision).toBe('DENY');
    await refused(key, 'POST', `/v1/policies/${id}/clone`, { from_version: 2 }, 409, 'conflict', /already has a draft/);
    const v3 = await api(stack, 'POST', `/v1/policies/${id}/activate`);
    expect(v3.body.version).toBe(3);
    expect((await api(stack, 'GET', `/v1/policies/${id}/versions`)).body.items.map((v: any) => [v.version, v.cloned_from])).toEqual([[1, null], [2, 1], [3, 1]]);

    // Binding a second policy to an agent.
    const other = `cl2-${RUN}`;
    expect((await api(stack, 'POST', '/v1/policies', policyDoc(other, 'DENY'))).status).toBe(201);
    expect((await api(stack, 'POST', `/v1/policies/${other}/activate`)).status).toBe(200);
    const agentId = `bound-${RUN}`;
    expect((await api(stack, 'POST', `/v1/agents/${agentId}/binding`, { policy_id: id })).status).toBe(200);
    await refused(key, 'POST', `/v1/agents/${agentId}/binding`, { policy_id: other }, 409, 'conflict', new RegExp(`is bound to policy ${id}; unbind it first`));
  }, 90_000);
});

describe('a run keeps the snapshot it started with', () => {
  it('a policy changed while a decision waits for approval: the receipt names the snapshot the run started with', async () => {
    const id = `inflight-${RUN}`;
    const tool = `inflight_tool_${RUN}`;
    const approver = await addPrincipal(stack, { name: `inflight-approver-${RUN}`, roles: ['approver'], groups: [`grp-${RUN}`] });
    const doc = (decision: string) => ({
      apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: id },
      rules: [{ name: 'waits', match: { tool }, decision, ...(decision === 'REQUIRE_APPROVAL' ? { approval: { approvers: [`grp-${RUN}`], quorum: 1, timeout: '1h' } } : {}) }],
    });
    expect((await api(stack, 'POST', '/v1/policies', doc('REQUIRE_APPROVAL'))).status).toBe(201);
    const v1 = await api(stack, 'POST', `/v1/policies/${id}/activate`);
    const ask = () => api(stack, 'POST', '/v1/decisions', { agent: { id: 'inflight-bot' }, action: { tool }, idempotency_key: randomUUID() });
    const started = await eventually(async () => { const r = await ask(); return r.body.status === 'pending_approval' ? r : undefined; });
    const startedWith = started.body.snapshot_hash;
    expect(started.body.matched_rules).toEqual(expect.arrayContaining([expect.objectContaining({ policy_id: id, version: 1 })]));

    expect((await api(stack, 'POST', `/v1/policies/${id}/clone`)).status).toBe(201);
    expect((await api(stack, 'PUT', `/v1/policies/${id}`, doc('DENY'))).status).toBe(200);
    expect((await api(stack, 'POST', `/v1/policies/${id}/activate`)).body.version).toBe(2);
    const now = await eventually(async () => { const r = await ask(); return r.body.decision === 'DENY' ? r : undefined; });
    expect(now.body.snapshot_hash).not.toBe(startedWith);

    const ok = await api(as(approver.key), 'POST', `/v1/decisions/${started.body.decision_id}/approvals`, { verdict: 'approve' });
    expect(ok.status).toBe(200);
    const receipt = await eventually(async () => {
      const r = await api(stack, 'GET', `/v1/decisions/${started.body.decision_id}/receipt`);
      return r.status === 200 && r.body.receipt.status === 'final' ? r.body.receipt : undefined;
    });
    expect(receipt).toMatchObject({ decision: 'ALLOW', snapshot_hash: startedWith });
    expect(receipt.policies).toEqual(expect.arrayContaining([expect.objectContaining({ policy_id: id, version: 1, hash: v1.body.hash })]));
  }, 90_000);

  it('refuses to activate a draft that does not compile (recorded by an older compiler), writing nothing', async () => {
    const id = `broken-${RUN}`;
    const writer = createPool(stack.dbUrl, 1);
    try {
      await appendToStream(writer, {
        streamId: `policy/default/${id}`, tenantId: 'default', expectedVersion: 0, recordedAt: new Date(),
        events: [{ type: 'PolicyDrafted', eventId: `policy/default/${id}/drafted/${RUN}`, data: { policy_id: id, version: 1, document: { ...policyDoc(id, 'MAYBE') }, drafted_by: 'prn_test' } }],
      });
    } finally {
      await writer.end();
    }
    const p = await refused(stack.key, 'POST', `/v1/policies/${id}/activate`, undefined, 400, 'validation_failed', /does not compile/);
    expect(p.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: expect.stringMatching(/rules/) })]));
  }, 30_000);
});

describe('signed export and import', () => {
  it('exports signed JSON; imports land as drafts; tampered files and unknown keys are refused with the reason', async () => {
    const id = `ex-${RUN}`;
    expect((await api(stack, 'POST', '/v1/policies', policyDoc(id, 'REQUIRE_APPROVAL'))).status).toBe(201);
    const act = await api(stack, 'POST', `/v1/policies/${id}/activate`);
    const ex = await api(stack, 'GET', `/v1/policies/${id}/export`);
    expect(ex.status).toBe(200);
    expect(ex.body).toMatchObject({ format: 'countersign.policy-export/v1', policy_id: id, version: 1, hash: act.body.hash, signing_key_id: act.body.signing_key_id });
    expect(ex.body.signature).toMatch(/^[A-Za-z0-9_-]{80,}$/);
    await refused(stack.key, 'GET', `/v1/policies/${id}/export?version=4`, undefined, 404, 'not_found', /has no version 4/);

    const tampered = structuredClone(ex.body);
    tampered.document.rules[0].decision = 'ALLOW';
    const t1 = await refused(stack.key, 'POST', '/v1/policies/import', tampered, 422, 'unprocessable', /hashes to .* not the recorded .*altered/);
    expect(t1.reason).toBe('hash_mismatch');
    const badSig = { ...ex.body, signature: `${ex.body.signature.slice(0, -2)}${ex.body.signature.endsWith('AA') ? 'BB' : 'AA'}` };
    expect((await refused(stack.key, 'POST', '/v1/policies/import', badSig, 422, 'unprocessable', /signature/)).reason).toBe('bad_signature');
    const stranger = createInMemoryKeyring();
    const { signature: _s, ...rest } = ex.body;
    const foreign = { ...rest, signing_key_id: stranger.activeKeyId };
    const foreignSigned = { ...foreign, signature: signDocument(exportSigned(foreign), stranger).value };
    expect((await refused(stack.key, 'POST', '/v1/policies/import', foreignSigned, 422, 'unprocessable', new RegExp(`signed by ${stranger.activeKeyId}, which is not one of this deployment's keys`))).reason).toBe('unknown_key');
    const noSig = await refused(stack.key, 'POST', '/v1/policies/import', rest, 400, 'validation_failed', /signature/);
    expect(noSig.errors).toEqual([expect.objectContaining({ path: 'signature' })]);

    // Into the same tenant: the next version's draft of the same policy, marked imported.
    const imported = await api(stack, 'POST', '/v1/policies/import', ex.body);
    expect(imported.status).toBe(201);
    expect(imported.body).toMatchObject({ id, status: 'active', version: 2, draft: { imported: true, version: 2 } });
    await refused(stack.key, 'POST', '/v1/policies/import', ex.body, 409, 'conflict', /already has a draft/);
    const [ev] = await eventsOf('PolicyImported', id);
    expect(ev).toMatchObject({ version: 2, signature_verified: true, source: { version: 1, hash: ex.body.hash, signing_key_id: ex.body.signing_key_id } });
    // Into another tenant (same deployment keys): a new policy's draft.
    const t = await newTenant({});
    const other = await api(as(t.admin), 'POST', '/v1/policies/import', ex.body);
    expect(other.status).toBe(201);
    expect(other.body).toMatchObject({ id, status: 'draft', version: 1, draft: { imported: true } });
    expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/activate`)).body).toMatchObject({ version: 1, hash: ex.body.hash });
  }, 60_000);
});

describe('agent manifest check', () => {
  it('lists every violation and refuses; --force is an admin act recorded as an event; a clean manifest passes', async () => {
    const agentId = `mf-${RUN}`;
    const id = `mfp-${RUN}`;
    const doc = {
      apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: 'manifest' }, scope: { level: 'agent', agent: agentId },
      models: { allowed_providers: ['anthropic', 'openai'], denied_models: ['gpt-3.5-turbo'] },
      tools: { denied: ['shell_*'] },
      rules: [{ name: 'no-deletes', match: { tool: 'file_delete' }, decision: 'DENY', reason: 'deletes are never automatic' }, { name: 'search', match: { tool: 'search_tool' }, decision: 'ALLOW' }],
    };
    expect((await api(stack, 'POST', '/v1/policies', doc)).status).toBe(201);
    expect((await api(stack, 'POST', `/v1/policies/${id}/activate`)).status).toBe(200);
    const manifest = {
      agent: { id: agentId }, providers: ['mistral'], models: [{ provider: 'openai', model: 'gpt-3.5-turbo' }, { provider: 'anthropic', model: 'claude-sonnet' }],
      tools: ['shell_exec', 'file_delete', { name: 'search_tool' }],
    };
    const agent = await addPrincipal(stack, { name: `mf-agent-${RUN}`, kind: 'agent', roles: ['agent'], agent_id: agentId });
    // Its key checks its own manifest only.
    await refused(agent.key, 'POST', `/v1/agents/other-${RUN}/manifest`, { ...manifest, agent: { id: `other-${RUN}` } }, 403, 'agent_mismatch', /decides as agent/);
    // The example policy (tenant-wide) denies shell_exec too: 5 violations, 4 of them from the agent's policy.
    const p = await refused(agent.key, 'POST', `/v1/agents/${agentId}/manifest`, manifest, 409, 'conflict', /has 5 violations of the active policies: .*provider mistral is not on the models.allowed_providers list/);
    expect(p.violations.filter((v: any) => v.policy_id === 'example').map((v: any) => [v.item, v.rule])).toEqual([['shell_exec', 'tools.denied']]);
    expect(p.violations.filter((v: any) => v.policy_id === id).map((v: any) => [v.kind, v.item, v.rule])).toEqual(expect.arrayContaining([
      ['provider', 'mistral', 'models.allowed_providers'], ['model', 'openai/gpt-3.5-turbo', 'models.denied_models'], ['tool', 'shell_exec', 'tools.denied'], ['tool', 'file_delete', 'no-deletes'],
    ]));
    expect(p.violations).toHaveLength(5);
    await refused(agent.key, 'POST', `/v1/agents/${agentId}/manifest?force=true`, manifest, 403, 'forbidden', /only an admin or a policy author/);
    await refused(stack.key, 'POST', `/v1/agents/other-${RUN}/manifest`, manifest, 400, 'validation_failed', /not other-/);
    const forced = await api(stack, 'POST', `/v1/agents/${agentId}/manifest?force=true`, manifest);
    expect(forced.status).toBe(200);
    expect(forced.body).toMatchObject({ accepted: true, forced: true });
    const ev = await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE type = 'AgentManifestForced' AND stream_id = $1`, [`agent/default/${agentId}`]);
    expect(ev.rows).toHaveLength(1);
    expect(ev.rows[0]!.data.violations).toHaveLength(5);
    const before = await count();
    const clean = await api(as(agent.key), 'POST', `/v1/agents/${agentId}/manifest`, { agent: { id: agentId }, models: [{ provider: 'anthropic', model: 'claude-sonnet' }], tools: ['search_tool'] });
    expect(clean.status).toBe(200);
    expect(clean.body).toMatchObject({ accepted: true, forced: false, violations: [] });
    expect(clean.body.policies).toEqual(expect.arrayContaining([{ policy_id: id, version: 1 }]));
    expect(await count()).toBe(before);
  }, 60_000);
});

describe('audit replay from Kafka rebuilds every policy chain', () => {
  it('has each policy of this file with its lineage, reviews and approvals, and no divergence', async () => {
    const cli = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), ...args], { cwd: ROOT, env: { ...process.env, ...stack.env }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
    });
    const report = await eventually(async () => {
      const r = await cli(['audit', 'replay', '--from', 'kafka', '--json']);
      const rep = JSON.parse(r.stdout);
      const chain = Object.entries(rep.policy_chains as Record<string, any>).find(([k]) => k.endsWith(`/fe-${RUN}`))?.[1];
      return chain?.reviews?.length === 2 && rep.policy_chains[`default/cl-${RUN}`]?.versions?.length === 3 && rep.policy_chains[`default/ex-${RUN}`]?.draft ? { r, rep, chain } : undefined;
    }, 60_000, 'replay from kafka');
    expect(report.rep.divergences).toEqual([]);
    expect(report.r.code).toBe(0);
    expect(report.chain).toMatchObject({ active_version: 1, draft: { version: 2 }, reviews: [{ status: 'approved' }, { status: 'rejected' }] });
    expect(report.chain.versions[0].approved_by).toMatch(/^prn_/);
    expect(report.rep.policy_chains[`default/cl-${RUN}`].versions.map((v: any) => v.cloned_from)).toEqual([null, 1, 1]);
    expect(report.rep.policy_chains[`default/ex-${RUN}`]).toMatchObject({ status: 'active', draft: { imported: true } });
    const fx = Object.entries(report.rep.policy_chains as Record<string, any>).find(([k]) => k.endsWith(`/fx-${RUN}`))?.[1];
    expect(fx).toMatchObject({ status: 'draft', reviews: [{ status: 'expired' }] });

    // The same chains for a person reading the terminal: who activated and approved each version, and its lineage.
    const human = await cli(['audit', 'replay', '--from', 'kafka']);
    expect(human.code).toBe(0);
    const feLine = human.stdout.split('\n').find((l) => l.startsWith('policy ') && l.includes(`/fe-${RUN} `));
    expect(feLine).toMatch(new RegExp(`active v1 {2}versions v1 \\(by prn_\\w+, approved by ${report.chain.versions[0].approved_by}\\)`));
    const clLine = human.stdout.split('\n').find((l) => l.startsWith(`policy  default/cl-${RUN} `));
    expect(clLine).toMatch(/v2 \(by [^)]*cloned from v1\) -> v3 \(by [^)]*cloned from v1\)/);
    expect(human.stdout.split('\n').find((l) => l.startsWith(`policy  default/ex-${RUN} `))).toMatch(/imported/);
  }, 90_000);
});
