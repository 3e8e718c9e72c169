import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest, loadAttestationSecret, newNonce } from '../../services/decisions/attestation.ts';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { Replay } from '../../services/audit/replay.ts';
import { loadPublicKeys } from '../../services/receipts/keyring.ts';
import { bootstrapPrincipalId, ensureBootstrap } from '../../services/identity/bootstrap.ts';
import { revokeApiKey } from '../../services/identity/key-management.ts';
import { updatePrincipal } from '../../services/identity/members.ts';
import { answerUpdate } from '../../workflows/decision-workflow.ts';
import { reviewAnswerUpdate } from '../../workflows/policy-activation-workflow.ts';
import { activateYaml, addPrincipal, api, attestedAnswer, eventually, stackEnv, startTestStack, type TestStack } from './harness.ts';

/**
 * Who is asking: an agent is who its key says, tenant admins stay in their tenant, and a disabled member never
 * counts. Each attack prints how many attempts it made and how many got through (0), and checks that nothing
 * was written by the refused ones.
 */
const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: identity-attacks, name: Identity attacks }
scope: { level: tenant }
rules:
  - name: imp-rate
    match: { tool: imp_tool }
    limit: { kind: rate, max: 2, window: 1h, per: agent }
    decision: DENY
    reason: more than 2 an hour
  - name: imp-ok
    match: { tool: imp_tool }
    decision: ALLOW
  - name: read-ok
    match: { tool: read_tool }
    decision: ALLOW
  - name: pay-needs-finance
    match: { tool: pay_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [finance], quorum: 1, timeout: 1h }
`;

let stack: TestStack;
const RUN = randomUUID().slice(0, 8);
const as = (key: string) => ({ url: stack.url, key });
const report = (name: string, attempts: number, through: number) => console.log(`attack ${name}: ${attempts} attempts, ${through} got through`);
const eventCount = async () => Number((await stack.db.query<{ n: string }>('SELECT count(*)::text AS n FROM events')).rows[0]!.n);
/** What a refused identity or decision request could have written: identity events, and the first event of a run. */
const writes = async () => Number((await stack.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM events WHERE stream_id LIKE 'tenant/%' OR type = 'DecisionRequested'`)).rows[0]!.n);
const counterCount = async () => Number((await stack.db.query<{ n: string }>('SELECT count(*)::text AS n FROM counter_entries')).rows[0]!.n);
const identityRows = async () => (await stack.db.query<{ f: string }>(
  `SELECT md5(coalesce((SELECT string_agg(p::text, ',' ORDER BY id) FROM principals p), '') || coalesce((SELECT string_agg(k::text, ',' ORDER BY id) FROM api_keys k), '')) AS f`,
)).rows[0]!.f;
const recorded = (id: string) => eventually(async () => ((await stack.db.query("SELECT 1 FROM events WHERE stream_id = $1 AND type = 'DecisionRequested'", [`run/${id}`])).rowCount ? true : undefined));
const receiptOf = (id: string) => eventually(async () => ((await stack.db.query("SELECT 1 FROM events WHERE stream_id = $1 AND type = 'ReceiptIssued'", [`run/${id}`])).rowCount ? true : undefined));

let payBot: { id: string; key: string };
let otherBot: { id: string; key: string };
let admin: { id: string; key: string };

beforeAll(async () => {
  stack = await startTestStack();
  await activateYaml(stack, POLICY);
  payBot = await addPrincipal(stack, { name: 'pay-bot', kind: 'agent', roles: ['agent'] });
  otherBot = await addPrincipal(stack, { name: 'other-bot', kind: 'agent', roles: ['agent'] });
  admin = await addPrincipal(stack, { name: 'ada', roles: ['admin'] });
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

describe('an agent is who its key says', () => {
  it('impersonating other agents (fresh ids each time) is 403, writes nothing, and never resets the per-agent counters', async () => {
    const ask = (body: object) => api(as(payBot.key), 'POST', '/v1/decisions', body);
    // The key's own agent: named or left out, it is pay-bot; two uses of the rate, then the limit.
    const first = await ask({ action: { tool: 'imp_tool' } });
    expect(first.body).toMatchObject({ decision: 'ALLOW' });
    await eventually(async () => ((await counterCount()) >= 1 ? true : undefined));
    expect((await ask({ agent: { id: 'pay-bot' }, action: { tool: 'imp_tool' } })).body.decision).toBe('ALLOW');
    await eventually(async () => ((await counterCount()) >= 2 ? true : undefined));
    const third = await ask({ action: { tool: 'imp_tool' } });
    expect(third.body).toMatchObject({ decision: 'DENY', matched_rule: 'imp-rate' });
    await receiptOf(third.body.decision_id); // its events are all written before counting what the attempts write
    const requested = await eventually(async () => (await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE stream_id = $1 AND type = 'DecisionRequested'`, [`run/${first.body.decision_id}`])).rows[0]?.data);
    expect(requested.request.agent.id).toBe('pay-bot');
    expect(requested.acting_principal).toBeUndefined();

    const [events, counters] = [await eventCount(), await counterCount()];
    const N = 30;
    let through = 0;
    for (let i = 0; i < N; i++) {
      const res = await ask({ agent: { id: `fresh-${RUN}-${i}` }, action: { tool: 'imp_tool' }, idempotency_key: `imp-${RUN}-${i}` });
      if (res.status !== 403 || res.body.code !== 'agent_mismatch') through += 1;
      else expect(res.body.errors).toEqual([expect.objectContaining({ path: 'agent.id' })]);
    }
    // A person with the agent role and no agent id of its own follows the same rule.
    const person = await addPrincipal(stack, { name: 'Pat', roles: ['agent', 'approver'] });
    const [events2, counters2] = [await eventCount(), await counterCount()];
    for (const id of ['pay-bot', `fresh-${RUN}-p`]) {
      const res = await api(as(person.key), 'POST', '/v1/decisions', { agent: { id }, action: { tool: 'imp_tool' } });
      if (res.status !== 403) through += 1;
    }
    const unnamed = await api(as(person.key), 'POST', '/v1/decisions', { action: { tool: 'imp_tool' } });
    if (unnamed.status !== 400) through += 1;
    expect([await eventCount(), await counterCount()]).toEqual([events2, counters2]);
    expect(events2 - events).toBe(2); // Pat's PrincipalCreated and ApiKeyCreated, nothing else
    expect(counters2).toBe(counters);
    // Still pay-bot's third request within the hour: the limit holds.
    expect((await ask({ action: { tool: 'imp_tool' } })).body).toMatchObject({ decision: 'DENY', matched_rule: 'imp-rate' });
    report('impersonate-another-agent', N + 3, through);
    expect(through).toBe(0);
  });

  it('acts_for lets a gateway ask for the agents an admin listed, records it, and nothing more', async () => {
    const gw = await addPrincipal(stack, { name: 'gateway', kind: 'agent', roles: ['agent'], acts_for: [`team-${RUN}-*`] });
    const ok = await api(as(gw.key), 'POST', '/v1/decisions', { agent: { id: `team-${RUN}-1` }, action: { tool: 'read_tool' } });
    expect(ok.body).toMatchObject({ decision: 'ALLOW' });
    const requested = await eventually(async () => (await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE stream_id = $1 AND type = 'DecisionRequested'`, [`run/${ok.body.decision_id}`])).rows[0]?.data);
    expect(requested).toMatchObject({ requested_by: gw.id, acting_principal: gw.id, request: { agent: { id: `team-${RUN}-1` } } });
    const before = await writes();
    let through = 0;
    for (const id of ['pay-bot', `team-${RUN}`, `xteam-${RUN}-1`, 'other-bot']) {
      if ((await api(as(gw.key), 'POST', '/v1/decisions', { agent: { id }, action: { tool: 'read_tool' } })).status !== 403) through += 1;
    }
    // The gateway cannot widen its own permission.
    if ((await api(as(gw.key), 'PATCH', `/v1/principals/${gw.id}`, { acts_for: ['*'] })).status !== 403) through += 1;
    expect(await writes()).toBe(before);
    report('acts-for-beyond-its-list', 5, through);
    expect(through).toBe(0);
  });

  it("reading another agent's decision or receipt by id (or by long-poll, or in a list) is 404", async () => {
    const mine = await api(as(payBot.key), 'POST', '/v1/decisions', { action: { tool: 'read_tool' } });
    expect(mine.status).toBe(200);
    await receiptOf(mine.body.decision_id);
    expect((await api(as(payBot.key), 'GET', `/v1/decisions/${mine.body.decision_id}`)).status).toBe(200);
    expect((await api(as(payBot.key), 'GET', `/v1/decisions/${mine.body.decision_id}/receipt`)).status).toBe(200);
    let through = 0;
    let attempts = 0;
    for (const route of [`/v1/decisions/${mine.body.decision_id}`, `/v1/decisions/${mine.body.decision_id}?wait=1`, `/v1/decisions/${mine.body.decision_id}/receipt`]) {
      attempts += 1;
      const res = await api(as(otherBot.key), 'GET', route);
      if (res.status !== 404 || JSON.stringify(res.body).includes('pay-bot')) through += 1;
    }
    attempts += 1;
    const list = await api(as(otherBot.key), 'GET', '/v1/decisions?agent=pay-bot');
    if (list.status !== 200 || list.body.items.length !== 0) through += 1;
    // Staff still read every run of their tenant.
    expect((await api(as(admin.key), 'GET', `/v1/decisions/${mine.body.decision_id}`)).status).toBe(200);
    report('read-another-agents-decision', attempts, through);
    expect(through).toBe(0);
  });

  it('an idempotency key used by another agent neither reads nor blocks its decision', async () => {
    const N = 5;
    let through = 0;
    const started: string[] = [];
    for (let i = 0; i < N; i++) {
      const key = `shared-${RUN}-${i}`;
      const a = await api(as(payBot.key), 'POST', '/v1/decisions', { action: { tool: 'read_tool', args: { n: i } }, idempotency_key: key });
      expect(a.status).toBe(200);
      // Same key, another agent, another request: its own run, never a's answer nor a 422.
      const b = await api(as(otherBot.key), 'POST', '/v1/decisions', { action: { tool: 'pay_tool', args: { n: i } }, idempotency_key: key });
      started.push(a.body.decision_id, b.body.decision_id);
      if (b.status !== 200 || b.body.decision_id === a.body.decision_id || b.body.decision !== 'REQUIRE_APPROVAL') through += 1;
      // And the first agent's retry still answers its own decision.
      const again = await api(as(payBot.key), 'POST', '/v1/decisions', { action: { tool: 'read_tool', args: { n: i } }, idempotency_key: key });
      if (again.body.decision_id !== a.body.decision_id || again.body.decision !== 'ALLOW') through += 1;
      if ((await api(as(otherBot.key), 'GET', `/v1/decisions/${a.body.decision_id}`)).status !== 404) through += 1;
    }
    // The runs' first events are written by the worker after the API answered: let them land, so the next
    // test's count of writes sees only what it causes.
    for (const id of started) await recorded(id);
    report('idempotency-key-across-agents', N * 3, through);
    expect(through).toBe(0);
  });
});

describe('tenant admins stay in their tenant', () => {
  it('a tenant admin cannot mint keys for, modify, disable, revoke or impersonate the platform admin', async () => {
    const boot = bootstrapPrincipalId('default');
    const keys = await api(as(admin.key), 'GET', `/v1/api-keys?principal_id=${boot}`);
    expect(keys.status).toBe(200);
    const bootKeyId = keys.body.items[0].id as string;
    const before = [await writes(), await identityRows()];
    const attempts: Array<[string, string, unknown, number[]]> = [
      ['POST', '/v1/api-keys', { principal_id: boot }, [403]],
      ['POST', '/v1/api-keys', { principal_id: boot, name: 'mine now', expires_at: new Date(Date.now() + 60_000).toISOString() }, [403]],
      ['PATCH', `/v1/principals/${boot}`, { roles: ['admin'] }, [403]],
      ['PATCH', `/v1/principals/${boot}`, { disabled: true }, [403]],
      ['PATCH', `/v1/principals/${boot}`, { name: 'hijacked' }, [403]],
      ['PATCH', `/v1/principals/${boot}`, { acts_for: ['*'] }, [403]],
      ['PATCH', `/v1/principals/${boot}`, { agent_id: 'bootstrap' }, [403]],
      ['PATCH', `/v1/principals/${boot}`, { email: `ada-${RUN}@example.com` }, [403]],
      ['DELETE', `/v1/api-keys/${bootKeyId}`, undefined, [403]],
      ['POST', '/v1/principals', { name: 'fake platform', kind: 'person', roles: ['admin'], platform_admin: true }, [400]],
      ['PATCH', `/v1/principals/${admin.id}`, { platform_admin: true }, [400]],
      ['POST', '/v1/tenants', { id: `evil-${RUN}`, name: 'evil' }, [403]],
      ['GET', '/v1/tenants', undefined, [403]],
    ];
    let through = 0;
    for (const [method, route, body, ok] of attempts) {
      const res = await api(as(admin.key), method, route, body);
      if (!ok.includes(res.status)) {
        through += 1;
        console.log(`got through: ${method} ${route} ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      }
    }
    expect([await writes(), await identityRows()]).toEqual(before);
    // The platform admin is untouched and its key still works.
    const me = await api(as(stack.bootstrapKey), 'GET', '/v1/me');
    expect(me.body).toMatchObject({ id: boot, platform_admin: true, disabled: false, name: 'bootstrap admin' });
    report('tenant-admin-vs-platform-admin', attempts.length, through);
    expect(through).toBe(0);
  });

  it("another tenant's admin and agent see nothing of this tenant's members, keys and decisions", async () => {
    const t = await api(as(stack.bootstrapKey), 'POST', '/v1/tenants', { id: `b-${RUN}`, name: 'B' });
    expect(t.status).toBe(201);
    const bAdmin = t.body.admin_api_key as string;
    const bAgent = await api(as(bAdmin), 'POST', '/v1/principals', { name: 'b-gateway', kind: 'agent', roles: ['agent'], acts_for: ['*'] });
    expect(bAgent.status).toBe(201);
    const mine = await api(as(payBot.key), 'POST', '/v1/decisions', { action: { tool: 'read_tool' } });
    await receiptOf(mine.body.decision_id);
    const before = [await writes(), await identityRows()];
    const attempts: Array<[string, string, string, unknown]> = [
      [bAdmin, 'GET', `/v1/decisions/${mine.body.decision_id}`, undefined],
      [bAdmin, 'GET', `/v1/decisions/${mine.body.decision_id}/receipt`, undefined],
      [bAgent.body.api_key, 'GET', `/v1/decisions/${mine.body.decision_id}`, undefined],
      [bAdmin, 'POST', '/v1/api-keys', { principal_id: payBot.id }],
      [bAdmin, 'POST', '/v1/api-keys', { principal_id: bootstrapPrincipalId('default') }],
      [bAdmin, 'PATCH', `/v1/principals/${payBot.id}`, { disabled: true }],
      [bAdmin, 'GET', `/v1/principals/${payBot.id}`, undefined],
      [bAdmin, 'PATCH', '/v1/tenants/default', { default_decision: 'ALLOW' }],
    ];
    let through = 0;
    for (const [key, method, route, body] of attempts) if ((await api(as(key), method, route, body)).status !== 404) through += 1;
    expect([await writes(), await identityRows()]).toEqual(before);
    report('wrong-tenant', attempts.length, through);
    expect(through).toBe(0);
  });

  it('a role that does not allow it is refused and writes nothing', async () => {
    const approver = await addPrincipal(stack, { name: 'Rita', roles: ['approver'], groups: ['finance'] });
    const before = [await writes(), await identityRows()];
    const attempts: Array<[string, string, string, unknown]> = [
      [payBot.key, 'POST', '/v1/principals', { name: 'sneaky', kind: 'agent', roles: ['agent'], acts_for: ['*'] }],
      [payBot.key, 'PATCH', `/v1/principals/${payBot.id}`, { acts_for: ['*'] }],
      [payBot.key, 'PATCH', `/v1/principals/${payBot.id}`, { agent_id: 'other-bot' }],
      [payBot.key, 'POST', '/v1/api-keys', { principal_id: otherBot.id }],
      [payBot.key, 'PATCH', '/v1/tenants/default', { default_decision: 'ALLOW' }],
      [payBot.key, 'POST', '/v1/agents/other-bot/manifest', { agent: { id: 'other-bot' }, tools: ['read_tool'] }],
      [approver.key, 'POST', '/v1/decisions', { agent: { id: 'pay-bot' }, action: { tool: 'read_tool' } }],
      [approver.key, 'PATCH', `/v1/principals/${approver.id}`, { groups: ['finance', 'admins'] }],
    ];
    let through = 0;
    for (const [key, method, route, body] of attempts) if ((await api(as(key), method, route, body)).status !== 403) through += 1;
    expect([await writes(), await identityRows()]).toEqual(before);
    report('wrong-role', attempts.length, through);
    expect(through).toBe(0);
  });

  it('a revoked (or disabled, or lost) bootstrap key is not re-issued at the next start', async () => {
    const tenant = `boot-${RUN}`;
    const keyFile = path.join(tmpdir(), `cs-boot-${RUN}`);
    const first = await ensureBootstrap(stack.db, { tenantId: tenant, keyFile });
    expect(first.created).toBe(true);
    const actor = { principalId: bootstrapPrincipalId(tenant), platformAdmin: true };
    const keyId = (await stack.db.query<{ id: string }>('SELECT id FROM api_keys WHERE principal_id = $1', [actor.principalId])).rows[0]!.id;
    await revokeApiKey(stack.db, tenant, keyId, new Date(), actor);
    let through = 0;
    const N = 5;
    for (let i = 0; i < N; i++) {
      const again = await ensureBootstrap(stack.db, { tenantId: tenant, keyFile: i % 2 ? keyFile : `${keyFile}-lost-${i}` });
      if (again.token !== null) through += 1;
    }
    await updatePrincipal(stack.db, tenant, actor.principalId, { disabled: true }, actor);
    if ((await ensureBootstrap(stack.db, { tenantId: tenant, keyFile })).token !== null) through += 1;
    const keys = await stack.db.query<{ revoked: boolean }>('SELECT revoked_at IS NOT NULL AS revoked FROM api_keys WHERE principal_id = $1', [actor.principalId]);
    expect(keys.rows).toEqual([{ revoked: true }]);
    report('revoked-bootstrap-after-restart', N + 1, through);
    expect(through).toBe(0);
  });
});

describe('platform admins are made by platform admins', () => {
  it('a platform admin makes another in an existing tenant: a person with the platform flag, recorded, whose key works at once', async () => {
    const home = `ops-${RUN}`;
    expect((await api(as(stack.bootstrapKey), 'POST', '/v1/tenants', { id: home, name: 'Platform ops' })).status).toBe(201);
    const made = await api(as(stack.bootstrapKey), 'POST', '/v1/platform/admins', { tenant_id: home, name: 'Grace', email: `grace-${RUN}@example.com` });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    expect(made.body).toMatchObject({ tenant_id: home, roles: ['admin', 'author', 'auditor'] });
    const me = await api(as(made.body.api_key), 'GET', '/v1/me');
    expect(me.body).toMatchObject({ id: made.body.principal_id, tenant_id: home, platform_admin: true, kind: 'person', name: 'Grace' });
    // A platform admin's route answers it; so does a second platform admin's own minting.
    expect((await api(as(made.body.api_key), 'GET', '/v1/tenants')).status).toBe(200);
    const created = await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE stream_id = $1 AND type = 'PrincipalCreated' AND data->>'principal_id' = $2`, [`tenant/${home}`, made.body.principal_id]);
    expect(created.rows[0]?.data).toMatchObject({ kind: 'person', platform_admin: true, by: bootstrapPrincipalId('default') });
    // The same request replayed makes no second admin: the email names one person of the tenant.
    const before = [await writes(), await identityRows()];
    const replayed = await api(as(stack.bootstrapKey), 'POST', '/v1/platform/admins', { tenant_id: home, name: 'Grace', email: `grace-${RUN}@example.com` });
    expect(replayed.status).toBe(409);
    expect([await writes(), await identityRows()]).toEqual(before);
  });

  it('attack platform-admin-minting: no one else makes a platform admin, and no field makes one other than a person of an existing tenant', async () => {
    const before = [await writes(), await identityRows()];
    const body = { tenant_id: 'default', name: 'Mallory' };
    const attempts: Array<[string | null, unknown, number]> = [
      [admin.key, body, 403], // a tenant admin
      [payBot.key, body, 403], // an agent
      [null, body, 401],
      ['cs_notakey_notasecret', body, 401],
      [`${stack.bootstrapKey}x`, body, 401], // forged: the platform admin's key, altered
      [stack.bootstrapKey, { ...body, tenant_id: `nowhere-${RUN}` }, 404],
      [stack.bootstrapKey, { ...body, platform_admin: false }, 400],
      [stack.bootstrapKey, { ...body, roles: ['agent'] }, 400],
      [stack.bootstrapKey, { ...body, kind: 'agent' }, 400],
      [stack.bootstrapKey, { ...body, agent_id: 'mallory-bot' }, 400],
      [stack.bootstrapKey, { ...body, name: 'x'.repeat(201) }, 400],
      [stack.bootstrapKey, { ...body, name: 'x'.repeat(2_000_000) }, 413],
      [stack.bootstrapKey, { tenant_id: 'default' }, 400],
      [stack.bootstrapKey, { ...body, tenant_id: '../default' }, 400],
      [stack.bootstrapKey, { ...body, email: 'not an email' }, 400],
    ];
    let through = 0;
    for (const [key, b, expected] of attempts) {
      const res = key === null
        ? await fetch(`${stack.url}/v1/platform/admins`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) }).then(async (r) => ({ status: r.status, body: await r.text() }))
        : await api(as(key), 'POST', '/v1/platform/admins', b);
      if (res.status !== expected) {
        through += 1;
        console.log(`got through: ${expected} expected, ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      }
    }
    expect([await writes(), await identityRows()]).toEqual(before);
    report('platform-admin-minting', attempts.length, through);
    expect(through).toBe(0);
  });
});

describe('a disabled principal never counts', () => {
  it("a disabled approver's answer, sent through the API or straight to the run, is not counted", async () => {
    const fin = await addPrincipal(stack, { name: 'Fin', roles: ['approver'], groups: ['finance'] });
    const args = { invoice: `INV-${RUN}` };
    const asked = await api(as(payBot.key), 'POST', '/v1/decisions', { action: { tool: 'pay_tool', args } });
    expect(asked.body).toMatchObject({ decision: 'REQUIRE_APPROVAL', status: 'pending_approval' });
    const id = asked.body.decision_id as string;
    await eventually(async () => ((await stack.db.query("SELECT 1 FROM events WHERE stream_id = $1 AND type = 'ApprovalRequested'", [`run/${id}`])).rowCount ? true : undefined));
    expect((await api(as(admin.key), 'PATCH', `/v1/principals/${fin.id}`, { disabled: true })).status).toBe(200);
    // The worker drops its cached principals when the change's notification lands (milliseconds).
    await new Promise((r) => setTimeout(r, 500));
    let through = 0;
    if ((await api(as(fin.key), 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' })).status !== 401) through += 1;
    const connection = await Connection.connect({ address: stackEnv().TEMPORAL_ADDRESS });
    try {
      const handle = new Client({ connection }).workflow.getHandle(workflowIdFor('default', id));
      const N = 3;
      for (let i = 0; i < N; i++) {
        const err = await handle.executeUpdate(answerUpdate, { args: [attestedAnswer(stack, { decisionId: id, approverId: fin.id, roles: ['approver'], groups: ['finance'], args, snapshotHash: asked.body.snapshot_hash })] }).catch((e: unknown) => e);
        if (!(err instanceof WorkflowUpdateFailedError) || !/disabled/.test(String(err.cause?.message))) through += 1;
      }
      report('disabled-approver-counted', N + 1, through);
    } finally {
      await connection.close();
    }
    expect((await stack.db.query("SELECT 1 FROM events WHERE stream_id = $1 AND type = 'ApprovalGranted'", [`run/${id}`])).rowCount).toBe(0);
    expect((await api(as(payBot.key), 'GET', `/v1/decisions/${id}`)).body.status).toBe('pending_approval');
    expect(through).toBe(0);
  });

  it("a disabled admin's approval of a four-eyes activation, sent straight to the review, is not counted", async () => {
    const t = await api(as(stack.bootstrapKey), 'POST', '/v1/tenants', { id: `fe-${RUN}`, name: 'four eyes', settings: { policy_four_eyes: true } });
    expect(t.status).toBe(201);
    const tAdmin = t.body.admin_api_key as string;
    const reviewer = await api(as(tAdmin), 'POST', '/v1/principals', { name: 'Rev', kind: 'person', roles: ['admin'] });
    const policyId = `fe-${RUN}`;
    const doc = { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: policyId, name: policyId }, rules: [{ name: 'open', match: { tool: 'anything' }, decision: 'ALLOW' }] };
    expect((await api(as(tAdmin), 'POST', '/v1/policies', doc)).status).toBe(201);
    const asked = await api(as(tAdmin), 'POST', `/v1/policies/${policyId}/activate`);
    expect(asked.status).toBe(202);
    const reviewId = asked.body.review_id as string;
    const requested = (await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE type = 'PolicyActivationRequested' AND data->>'review_id' = $1`, [reviewId])).rows[0]!.data;
    expect((await api(as(tAdmin), 'PATCH', `/v1/principals/${reviewer.body.id}`, { disabled: true })).status).toBe(200);
    let through = 0;
    if ((await api(as(reviewer.body.api_key), 'POST', `/v1/policies/${policyId}/activation/approvals`, { verdict: 'approve' })).status !== 401) through += 1;
    const secret = loadAttestationSecret(stack.env['COUNTERSIGN_KEYS_DIR']!);
    const connection = await Connection.connect({ address: stackEnv().TEMPORAL_ADDRESS });
    const N = 3;
    try {
      const handle = new Client({ connection }).workflow.getHandle(reviewId);
      for (let i = 0; i < N; i++) {
        const message = attest(secret, {
          kind: 'policy_review' as const, review_id: reviewId, nonce: newNonce(), verdict: 'approve' as const, by: reviewer.body.id as string, roles: ['admin'],
          tenant_id: `fe-${RUN}`, document_hash: requested.document_hash as string,
        }, new Date());
        const err = await handle.executeUpdate(reviewAnswerUpdate, { args: [message] }).catch((e: unknown) => e);
        if (!(err instanceof WorkflowUpdateFailedError) || !/disabled/.test(String(err.cause?.message))) through += 1;
      }
    } finally {
      await connection.close();
    }
    expect((await stack.db.query(`SELECT 1 FROM events WHERE type = 'PolicyActivated' AND tenant_id = $1`, [`fe-${RUN}`])).rowCount).toBe(0);
    report('disabled-admin-activation-approval', N + 1, through);
    expect(through).toBe(0);
  });
});

describe('every change to who may do what is an event', () => {
  it('is on the tenant stream, and audit replay folds it: who joined the finance group, and when they left', async () => {
    const fay = await addPrincipal(stack, { name: 'Fay', roles: ['approver'], groups: ['finance'] });
    // Fay joins finance, approves a payment, and leaves.
    const pay = await api(as(payBot.key), 'POST', '/v1/decisions', { action: { tool: 'pay_tool', args: { invoice: `FAY-${RUN}` } } });
    expect(pay.body.decision).toBe('REQUIRE_APPROVAL');
    await eventually(async () => ((await stack.db.query("SELECT 1 FROM events WHERE stream_id = $1 AND type = 'ApprovalRequested'", [`run/${pay.body.decision_id}`])).rowCount ? true : undefined));
    expect((await api(as(fay.key), 'POST', `/v1/decisions/${pay.body.decision_id}/approvals`, { verdict: 'approve' })).status).toBe(200);
    await receiptOf(pay.body.decision_id);
    expect((await api(as(admin.key), 'PATCH', `/v1/principals/${fay.id}`, { groups: [] })).status).toBe(200);
    expect((await api(as(admin.key), 'PATCH', '/v1/tenants/default', { settings: { policy_require_validation: true } })).status).toBe(200);
    expect((await api(as(admin.key), 'PATCH', '/v1/tenants/default', { settings: {} })).status).toBe(200);
    const key = await api(as(admin.key), 'POST', '/v1/api-keys', { principal_id: fay.id, name: 'second' });
    expect((await api(as(admin.key), 'DELETE', `/v1/api-keys/${key.body.id}`)).status).toBe(200);
    const types = (await stack.db.query<{ type: string; data: any }>(`SELECT type, data FROM events WHERE stream_id = 'tenant/default' ORDER BY stream_version`)).rows;
    const fays = types.filter((e) => e.data.principal_id === fay.id).map((e) => e.type);
    expect(fays).toEqual(['PrincipalCreated', 'ApiKeyCreated', 'PrincipalChanged', 'ApiKeyCreated', 'ApiKeyRevoked']);
    expect(types.filter((e) => e.type === 'TenantChanged')).toHaveLength(2);

    const rows = await stack.db.query<{ e: string }>(
      `SELECT json_build_object('position', position::text, 'stream_id', stream_id, 'stream_version', stream_version, 'event_id', event_id,
         'type', type, 'schema_version', schema_version, 'tenant_id', tenant_id, 'data', data, 'metadata', metadata,
         'recorded_at', to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'prev_hash', prev_hash, 'hash', hash)::text AS e
         FROM events ORDER BY position`,
    );
    const replay = new Replay({ keys: await loadPublicKeys(stack.env['COUNTERSIGN_KEYS_DIR']!), parallel: false });
    for (const r of rows.rows) replay.add({ value: r.e, where: 'postgres' });
    const out = replay.finish();
    expect(out.divergences.filter((d) => d.stream_id?.startsWith('tenant/') || /agent|answered round/.test(d.problem))).toEqual([]);
    expect(out.receipts.length).toBeGreaterThan(0);
    const m = out.memberships['default']!;
    const stint = m.groups.find((g) => g.group === 'finance' && g.principal_id === fay.id);
    expect(stint).toMatchObject({ joined_at: expect.any(String), left_at: expect.any(String) });
    expect(m.members.find((x) => x.principal_id === payBot.id)?.access).toMatchObject({ agent_id: 'pay-bot', acts_for: [] });
    // The run shows Fay's approval, counted while she was in finance.
    const approvedBy = rows.rows.map((r) => JSON.parse(r.e) as { stream_id: string; type: string; data: { approver_id?: string } })
      .filter((e) => e.stream_id === `run/${pay.body.decision_id}` && e.type === 'ApprovalGranted').map((e) => e.data.approver_id);
    expect(approvedBy).toEqual([fay.id]);
  });
});
