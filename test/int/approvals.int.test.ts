import { createServer, type Server } from 'node:http';
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { loadPublicKeys } from '../../services/receipts/keyring.ts';
import { verifyDocument } from '../../services/receipts/verify.ts';
import { answerUpdate } from '../../workflows/decision-workflow.ts';
import { activateYaml, addPrincipal, api, eventually, stackEnv, startTestStack, type TestStack } from './harness.ts';

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: approvals-test, name: Approval rounds under test }
scope: { level: tenant }
tools:
  denied: [shell_exec]
rules:
  - name: deploy-needs-sre
    match: { tool: deploy_tool, operation: Deploy }
    decision: REQUIRE_APPROVAL
    reason: deploys need an SRE
    constraints: { max_runtime_sec: 300 }
    approval: { approvers: [sre], quorum: 1, timeout: 2s, escalate_to: [sre-leads], on_timeout: DENY }
  - name: drop-needs-two
    match: { tool: db_tool, operation: Drop }
    decision: REQUIRE_APPROVAL
    reason: dropping a table needs two DBAs
    approval: { approvers: [dba], quorum: 2, timeout: 1h }
  - name: reports
    match: { tool: report_tool }
    decision: ALLOW
    reason: reports are fine
  - name: report-size
    on: outcome
    match: { tool: report_tool }
    condition: status == "succeeded" && output.rows > 100
    decision: DENY
    reason: a report may not return more than 100 rows
`;

type Who = { id: string; key: string };
const ask = (stack: TestStack, who: Who | null, body: object) => api(who ? { url: stack.url, key: who.key } : stack, 'POST', '/v1/decisions', body);
const answer = (stack: TestStack, who: Who, id: string, body: object) => api({ url: stack.url, key: who.key }, 'POST', `/v1/decisions/${id}/approvals`, body);
const read = (stack: TestStack, id: string, wait = 0) => api(stack, 'GET', `/v1/decisions/${id}?wait=${wait}`);
const runEvents = async (stack: TestStack, id: string) =>
  (await stack.db.query<{ type: string; data: any }>('SELECT type, data FROM events WHERE stream_id = $1 ORDER BY stream_version', [`run/${id}`])).rows;

describe('approval rounds: durable, validated, escalated, overridable', () => {
  let stack: TestStack;
  let agent: Who, lead: Who, dba1: Who, dba2: Who, outsider: Who, admin: Who;
  let hook: Server;
  const callbacks: Array<{ headers: Record<string, string | string[] | undefined>; body: string }> = [];
  let hookUrl = '';

  beforeAll(async () => {
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => { callbacks.push({ headers: req.headers, body }); res.writeHead(204).end(); });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
    hookUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}/hook`;
    stack = await startTestStack({
      COUNTERSIGN_OVERRIDE_WINDOW: '5m',
      COUNTERSIGN_OUTCOME_WINDOW: '5m',
      COUNTERSIGN_OVERRIDE_TIMEOUT: '3s',
      COUNTERSIGN_OVERRIDE_GROUPS: 'admins',
      COUNTERSIGN_CALLBACK_ALLOW_PRIVATE: 'true',
    });
    await activateYaml(stack, POLICY);
    agent = await addPrincipal(stack, { name: 'deploy bot', kind: 'agent', roles: ['agent'] });
    // Members of the deploy round's group: they are notified, and never answer in these tests.
    await addPrincipal(stack, { name: 'Sam', roles: ['approver'], groups: ['sre'] });
    await addPrincipal(stack, { name: 'Sue', roles: ['approver'], groups: ['sre'] });
    lead = await addPrincipal(stack, { name: 'Lee', roles: ['approver'], groups: ['sre-leads'] });
    dba1 = await addPrincipal(stack, { name: 'Dee', roles: ['approver'], groups: ['dba'] });
    dba2 = await addPrincipal(stack, { name: 'Dan', roles: ['approver'], groups: ['dba'] });
    outsider = await addPrincipal(stack, { name: 'Otto', roles: ['approver'], groups: ['marketing'] });
    admin = await addPrincipal(stack, { name: 'Ada', roles: ['approver', 'admin'], groups: ['admins'] });
  });
  afterAll(async () => {
    await stack?.stop();
    hook?.close();
  });

  it('waits for an approver, counts one answer per person, and wakes the long-poll with the final decision', async () => {
    const res = await ask(stack, agent, { agent: { id: 'deploy-bot' }, action: { tool: 'db_tool', operation: 'Drop', args: { table: 'users' } }, callback_url: hookUrl });
    expect(res.body).toMatchObject({ decision: 'REQUIRE_APPROVAL', status: 'pending_approval', matched_rule: 'drop-needs-two' });
    const id = res.body.decision_id;
    await eventually(async () => ((await api({ url: stack.url, key: dba1.key }, 'GET', '/v1/approvals')).body.items?.some((i: any) => i.decision_id === id) ? true : undefined));

    const poll = read(stack, id, 30);
    const first = await answer(stack, dba1, id, { verdict: 'approve' });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ counted: true, round_status: 'open', decision_status: 'pending_approval' });
    const again = await answer(stack, dba1, id, { verdict: 'approve' });
    expect(again.status).toBe(409);
    expect(again.body.detail).toMatch(/already answered/);
    const second = await answer(stack, dba2, id, { verdict: 'approve', comment: 'backup verified' });
    expect(second.body).toMatchObject({ counted: true, round_status: 'approved', decision_status: 'final' });

    const final = await poll;
    expect(final.body).toMatchObject({ decision: 'ALLOW', status: 'final' });
    const receipt = await eventually(async () => {
      const r = await api(stack, 'GET', `/v1/decisions/${id}/receipt`);
      return r.status === 200 && r.body.receipt?.approvals?.length === 2 ? r.body : undefined;
    });
    expect(receipt.receipt.decision).toBe('ALLOW');
    expect(receipt.receipt.approvals.map((a: any) => a.approver_id).sort()).toEqual([dba1.id, dba2.id].sort());

    // The callback: the final decision, signed with the receipt key.
    const cb = await eventually(async () => callbacks.find((c) => c.headers['x-countersign-decision'] === id));
    const body = JSON.parse(cb.body);
    expect(body.decision).toMatchObject({ decision_id: id, decision: 'ALLOW', status: 'final' });
    const [kid, value] = String(cb.headers['x-countersign-signature']).split('.');
    const check = verifyDocument(body, { alg: 'Ed25519', key_id: kid, value }, await loadPublicKeys(stack.env['COUNTERSIGN_KEYS_DIR']!));
    expect(check.ok).toBe(true);
  });

  it('counts nothing from the requester, a wrong group, another tenant, a non-approver, or a forged update sent straight to Temporal', async () => {
    const res = await ask(stack, agent, { agent: { id: 'deploy-bot' }, action: { tool: 'db_tool', operation: 'Drop', args: { table: 'orders' } } });
    const id = res.body.decision_id;
    await eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'ApprovalRequested') ? true : undefined));

    // The requester (an agent key) lacks the approver role outright; the admin who asked on its behalf...
    expect((await answer(stack, agent, id, { verdict: 'approve' })).status).toBe(403);
    const wrongGroup = await answer(stack, outsider, id, { verdict: 'approve' });
    expect(wrongGroup.status).toBe(409);
    expect(wrongGroup.body.detail).toMatch(/none of the round's groups/);
    const wrongArgs = await answer(stack, dba1, id, { verdict: 'approve', args_digest: `sha256:${'0'.repeat(64)}` });
    expect(wrongArgs.status).toBe(409);
    expect(wrongArgs.body.detail).toMatch(/other arguments/);

    // Another tenant's approver gets "not found", never a hint that the decision exists.
    const other = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id: `other-${Date.now()}`, name: 'Other' });
    expect(other.status).toBe(201);
    const otherKey = { url: stack.url, key: other.body.admin_api_key };
    const foreign = await api(otherKey, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
    expect([403, 404]).toContain(foreign.status);

    // Straight to Temporal, naming a real approver, without the API's attestation.
    const connection = await Connection.connect({ address: stackEnv().TEMPORAL_ADDRESS });
    try {
      const handle = new Client({ connection }).workflow.getHandle(workflowIdFor('default', id));
      const events = await runEvents(stack, id);
      const round = events.find((e) => e.type === 'ApprovalRequested')!.data;
      const forged = {
        kind: 'answer', decision_id: id, nonce: 'forged-nonce-0123456789', round: 1, verdict: 'approve', channel: 'api', approver_id: dba1.id, approver_roles: ['approver'], approver_groups: ['dba'], tenant_id: 'default',
        args_digest: round.args_digest, snapshot_hash: round.snapshot_hash, attestation: { issued_at: new Date().toISOString(), mac: 'forged' },
      };
      const err = await handle.executeUpdate(answerUpdate, { args: [forged as any] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((err as WorkflowUpdateFailedError).cause?.message)).toMatch(/did not come through Countersign/);
      const garbage = await handle.executeUpdate(answerUpdate, { args: [{ kind: 'answer', round: 'x' } as any] }).catch((e: unknown) => e);
      expect(String((garbage as WorkflowUpdateFailedError).cause?.message)).toMatch(/invalid message/);
    } finally {
      await connection.close();
    }

    const events = await runEvents(stack, id);
    expect(events.filter((e) => e.type === 'ApprovalGranted' || e.type === 'ApprovalRejected')).toEqual([]);
    expect((await read(stack, id)).body.status).toBe('pending_approval');

    // A rejection by one approver ends the round with DENY.
    const no = await answer(stack, dba2, id, { verdict: 'reject', comment: 'not during business hours' });
    expect(no.body).toMatchObject({ counted: true, round_status: 'rejected', decision_status: 'final' });
    expect((await read(stack, id)).body).toMatchObject({ decision: 'DENY', status: 'final' });
  });

  it('escalates after the timeout, then expires to the fallback with an explicit event', async () => {
    const res = await ask(stack, agent, { agent: { id: 'deploy-bot' }, action: { tool: 'deploy_tool', operation: 'Deploy', args: { service: 'api' } } });
    expect(res.body).toMatchObject({ decision: 'REQUIRE_APPROVAL', matched_rule: 'deploy-needs-sre' });
    const id = res.body.decision_id;
    const final = await read(stack, id, 30);
    expect(final.body).toMatchObject({ decision: 'DENY', status: 'final' });
    const types = (await runEvents(stack, id)).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['ApprovalRequested', 'ApprovalEscalated', 'ApprovalExpired', 'DecisionFinalized']));
    expect(types.indexOf('ApprovalEscalated')).toBeLessThan(types.indexOf('ApprovalExpired'));
    const escalated = (await runEvents(stack, id)).find((e) => e.type === 'ApprovalEscalated')!.data;
    expect(escalated.groups).toEqual(expect.arrayContaining(['sre', 'sre-leads']));
  });

  it('lets a lead answer after escalation, and the approval keeps its constraints', async () => {
    const res = await ask(stack, agent, { agent: { id: 'deploy-bot' }, action: { tool: 'deploy_tool', operation: 'Deploy', args: { service: 'web' } } });
    const id = res.body.decision_id;
    const early = await answer(stack, lead, id, { verdict: 'approve' });
    expect(early.status).toBe(409); // leads are not in the round until it escalates
    await eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'ApprovalEscalated') ? true : undefined), 10_000);
    const late = await answer(stack, lead, id, { verdict: 'approve' });
    expect(late.body).toMatchObject({ counted: true, decision_status: 'final' });
    expect((await read(stack, id)).body).toMatchObject({ decision: 'ALLOW_WITH_CONSTRAINTS', constraints: { max_runtime_sec: 300 } });
  });

  it('opens an override round for a DENY: granted turns it into ALLOW, denied keeps DENY', async () => {
    const denied = await ask(stack, agent, { agent: { id: 'deploy-bot' }, action: { tool: 'shell_exec', args: { cmd: 'ls' } } });
    expect(denied.body).toMatchObject({ decision: 'DENY', status: 'final' });
    const id = denied.body.decision_id;
    await eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'ReceiptIssued') ? true : undefined));

    const noReason = await api({ url: stack.url, key: agent.key }, 'POST', `/v1/decisions/${id}/override`, { justification: ' ' });
    expect(noReason.status).toBe(400);
    const asked = await api({ url: stack.url, key: agent.key }, 'POST', `/v1/decisions/${id}/override`, { justification: 'incident 4711: need to read the logs' });
    expect(asked.status).toBe(202);
    expect(asked.body.groups).toEqual(['admins']);
    const twice = await api({ url: stack.url, key: agent.key }, 'POST', `/v1/decisions/${id}/override`, { justification: 'again' });
    expect(twice.status).toBe(409);
    const ok = await answer(stack, admin, id, { verdict: 'approve' });
    expect(ok.body).toMatchObject({ counted: true, decision_status: 'final' });
    expect((await read(stack, id)).body).toMatchObject({ decision: 'ALLOW', status: 'final' });
    const receipt = await eventually(async () => {
      const r = await api(stack, 'GET', `/v1/decisions/${id}/receipt`);
      return r.body?.receipt?.overrides?.[0]?.outcome === 'granted' ? r.body.receipt : undefined;
    });
    expect(receipt.decision).toBe('ALLOW');
    expect(receipt.overrides[0]).toMatchObject({ requested_by: agent.id, justification: 'incident 4711: need to read the logs', outcome: 'granted' });

    // Denied by timeout: the override round expires and the DENY stands.
    const denied2 = await ask(stack, agent, { agent: { id: 'deploy-bot' }, action: { tool: 'shell_exec', args: { cmd: 'rm -rf /' } } });
    const id2 = denied2.body.decision_id;
    await eventually(async () => ((await runEvents(stack, id2)).some((e) => e.type === 'ReceiptIssued') ? true : undefined));
    expect((await api({ url: stack.url, key: agent.key }, 'POST', `/v1/decisions/${id2}/override`, { justification: 'please' })).status).toBe(202);
    await eventually(async () => ((await runEvents(stack, id2)).some((e) => e.type === 'OverrideDenied') ? true : undefined), 20_000);
    expect((await read(stack, id2)).body).toMatchObject({ decision: 'DENY', status: 'final' });
  });

  it('an outcome reported while the first receipt is being issued is recorded once, and a receipt covers it', async () => {
    // The race seen once in the tool-catalog test: the receipt and the outcome both took the version after the
    // final decision, and the later append was refused (409 "partly overlaps"). Ask many times at once.
    const ids = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
      const res = await ask(stack, agent, { agent: { id: 'deploy-bot' }, action: { tool: 'report_tool', args: { race: i } } });
      expect(res.body.decision).toBe('ALLOW');
      return res.body.decision_id as string;
    }));
    const outs = await Promise.all(ids.map((id) => api({ url: stack.url, key: agent.key }, 'POST', `/v1/decisions/${id}/outcome`, { status: 'succeeded', output: { rows: 1 } })));
    expect(outs.map((o) => [o.status, o.body?.detail ?? ''])).toEqual(ids.map(() => [200, '']));
    for (const id of ids) {
      const receipt = await eventually(async () => {
        const r = await api(stack, 'GET', `/v1/decisions/${id}/receipt`);
        return r.body?.receipt?.outcome ? r.body.receipt : undefined;
      });
      expect(receipt.outcome).toMatchObject({ status: 'succeeded' });
      const types = (await runEvents(stack, id)).map((e) => e.type);
      expect(types.filter((t) => t === 'OutcomeReported')).toHaveLength(1);
    }
  });

  it('records the outcome and an output violation from the run’s own output rules', async () => {
    const res = await ask(stack, agent, { agent: { id: 'deploy-bot' }, action: { tool: 'report_tool', args: { q: 'all' } } });
    expect(res.body.decision).toBe('ALLOW');
    const id = res.body.decision_id;
    await eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'ReceiptIssued') ? true : undefined));
    const out = await api({ url: stack.url, key: agent.key }, 'POST', `/v1/decisions/${id}/outcome`, { status: 'succeeded', output: { rows: 250 } });
    expect(out.status).toBe(200);
    expect(out.body.violations_found).toEqual([{ policy_id: 'approvals-test', rule: 'report-size', reason: 'a report may not return more than 100 rows' }]);
    const again = await api({ url: stack.url, key: agent.key }, 'POST', `/v1/decisions/${id}/outcome`, { status: 'succeeded', output: { rows: 1 } });
    expect(again.status).toBe(409);
    const receipt = await eventually(async () => {
      const r = await api(stack, 'GET', `/v1/decisions/${id}/receipt`);
      return r.body?.receipt?.outcome ? r.body.receipt : undefined;
    });
    expect(receipt.outcome).toMatchObject({ status: 'succeeded', violations: [{ rule: 'report-size' }] });
  });
});
