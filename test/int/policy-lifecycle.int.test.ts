import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, eventually, startTestStack, type TestStack } from './harness.ts';

/** The policy lifecycle over HTTP (issue 7): every transition, and every refusal writes no event. */

let stack: TestStack;
const pid = `life-${randomUUID().slice(0, 8)}`;
const doc = (decision: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: pid, name: 'Lifecycle' },
  rules: [{ name: 'shell', match: { tool: 'life_shell' }, decision }], ...extra,
});
const count = async () => Number((await stack.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM events WHERE stream_id LIKE 'policy/%' OR stream_id LIKE 'agent/%'`)).rows[0]!.n);
const ask = async (agent = 'life-bot') => api(stack, 'POST', '/v1/policy/simulate', { request: { agent: { id: agent }, action: { tool: 'life_shell' } } });

async function refused(method: string, path: string, body: unknown, status: number): Promise<void> {
  const before = await count();
  const res = await api(stack, method, path, body);
  expect({ path, status: res.status }).toEqual({ path, status });
  expect(await count()).toBe(before);
}

beforeAll(async () => {
  stack = await startTestStack();
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

describe('policy lifecycle', () => {
  it('draft, edit, delete, activate, scope, clone, rollback, deprecate, diff, versions', async () => {
    const yaml = `apiVersion: countersign/v1\nkind: Policy\nmetadata: { id: ${pid}, name: Lifecycle }\nrules:\n  - name: shell\n    match: { tool: life_shell }\n    decision: REQUIRE_APPROVAL\n`;
    const created = await api(stack, 'POST', '/v1/policies', yaml, { 'content-type': 'application/yaml' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: pid, version: 1, status: 'draft' });
    await refused('POST', '/v1/policies', doc('DENY'), 409);
    const edited = await api(stack, 'PUT', `/v1/policies/${pid}`, doc('DENY'));
    expect(edited.status).toBe(200);

    const act = await api(stack, 'POST', `/v1/policies/${pid}/activate`);
    expect(act.status).toBe(200);
    expect(act.body).toMatchObject({ id: pid, version: 1, status: 'active' });
    expect(act.body.hash).toMatch(/^sha256:/);
    expect(act.body.signature).toBeTruthy();
    expect(act.body.signing_key_id).toBeTruthy();
    await eventually(async () => ((await ask()).body.decision === 'DENY' ? true : undefined));

    await refused('PUT', `/v1/policies/${pid}`, doc('ALLOW'), 409); // active is immutable
    await refused('DELETE', `/v1/policies/${pid}`, undefined, 409); // not a draft
    await refused('POST', `/v1/policies/${pid}/rollback`, { to_version: 9 }, 404);

    const cloned = await api(stack, 'POST', `/v1/policies/${pid}/clone`);
    expect(cloned.status).toBe(201);
    expect(cloned.body).toMatchObject({ version: 2, draft: { cloned_from: 1 } });
    await refused('PUT', `/v1/policies/${pid}`, doc('ALLOW', { scope: { level: 'agent', agent: 'x' } }), 409); // scope fixed
    expect((await api(stack, 'PUT', `/v1/policies/${pid}`, doc('ALLOW'))).status).toBe(200);
    const v2 = await api(stack, 'POST', `/v1/policies/${pid}/activate`);
    expect(v2.body.version).toBe(2);
    await eventually(async () => ((await ask()).body.decision === 'ALLOW' ? true : undefined));

    const diff = await api(stack, 'GET', `/v1/policies/${pid}/diff?from=1&to=2`);
    expect(diff.status).toBe(200);
    expect(diff.body.rules).toEqual([expect.objectContaining({ rule: 'shell', change: 'changed' })]);

    const rb = await api(stack, 'POST', `/v1/policies/${pid}/rollback`, { to_version: 1 });
    expect(rb.status).toBe(200);
    expect(rb.body).toMatchObject({ version: 3, rolled_back_to: 1 });
    await eventually(async () => ((await ask()).body.decision === 'DENY' ? true : undefined));
    const versions = await api(stack, 'GET', `/v1/policies/${pid}/versions`);
    expect(versions.body.items.map((v: { version: number }) => v.version)).toEqual([1, 2, 3]);
    expect(versions.body.active_version).toBe(3);

    const dep = await api(stack, 'POST', `/v1/policies/${pid}/deprecate`);
    expect(dep.status).toBe(200);
    expect(dep.body.status).toBe('deprecated');
    await eventually(async () => ((await ask()).body.matched_rule !== 'shell' ? true : undefined));
    await refused('POST', `/v1/policies/${pid}/deprecate`, undefined, 409);

    const listed = await api(stack, 'GET', '/v1/policies');
    expect(listed.body.items.map((p: { id: string }) => p.id)).toContain(pid);
  }, 120_000);

  it('deletes drafts only; validates a draft against recent runs', async () => {
    const id = `val-${randomUUID().slice(0, 8)}`;
    const d = { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: 'V' }, rules: [{ name: 'deny-search', match: { tool: 'search_tool' }, decision: 'DENY' }] };
    const run = await api(stack, 'POST', '/v1/decisions', { agent: { id: 'val-bot' }, action: { tool: 'search_tool' }, idempotency_key: randomUUID() });
    expect(run.status).toBe(200);
    await eventually(async () => ((await stack.db.query(`SELECT 1 FROM events WHERE stream_id = $1 AND type = 'PolicyEvaluated'`, [`run/${run.body.decision_id}`])).rowCount ? true : undefined));
    expect((await api(stack, 'POST', '/v1/policies', d)).status).toBe(201);
    const v = await api(stack, 'POST', `/v1/policies/${id}/validate`);
    expect(v.status).toBe(200);
    expect(v.body.runs).toBeGreaterThan(0);
    if (run.body.decision !== 'DENY') expect(v.body.stricter).toBeGreaterThan(0);
    expect((await stack.db.query(`SELECT 1 FROM events WHERE type = 'PolicyValidated' AND data->>'policy_id' = $1`, [id])).rowCount).toBe(1);
    expect((await api(stack, 'DELETE', `/v1/policies/${id}`)).status).toBe(200);
    await refused('GET', `/v1/policies/${id}`, undefined, 404);
  }, 60_000);

  it('binds at most one policy per agent', async () => {
    const a = `bind-a-${randomUUID().slice(0, 6)}`;
    const b = `bind-b-${randomUUID().slice(0, 6)}`;
    for (const [id, decision] of [[a, 'DENY'], [b, 'ALLOW']] as const) {
      expect((await api(stack, 'POST', '/v1/policies', { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: id }, rules: [{ name: `r-${id}`, match: { tool: 'bind_tool' }, decision }] })).status).toBe(201);
      expect((await api(stack, 'POST', `/v1/policies/${id}/activate`)).status).toBe(200);
    }
    const agent = `agent-${randomUUID().slice(0, 6)}`;
    expect((await api(stack, 'POST', `/v1/agents/${agent}/binding`, { policy_id: a })).status).toBe(200);
    await refused('POST', `/v1/agents/${agent}/binding`, { policy_id: b }, 409);
    await refused('POST', `/v1/agents/${agent}/binding`, { policy_id: 'no-such-policy' }, 404);
    const got = await api(stack, 'GET', `/v1/agents/${agent}/binding`);
    expect(got.body).toMatchObject({ policy_id: a, version: 1 });
    // The bound policy applies only to its agent.
    const sim = (agentId: string) => api(stack, 'POST', '/v1/policy/simulate', { request: { agent: { id: agentId }, action: { tool: 'bind_tool' } } });
    await eventually(async () => ((await sim(agent)).body.matched_rules.some((m: { policy_id: string }) => m.policy_id === a) ? true : undefined));
    await eventually(async () => ((await sim('someone-else')).body.matched_rules.every((m: { policy_id: string }) => m.policy_id !== a) ? true : undefined));
    expect((await api(stack, 'DELETE', `/v1/agents/${agent}/binding`)).status).toBe(200);
    await refused('DELETE', `/v1/agents/${agent}/binding`, undefined, 404);
  }, 60_000);
});
