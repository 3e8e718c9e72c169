import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type TestStack } from './harness.ts';

// Every approval that was asked for is given (several rules, each its own requirement of one round), escalation
// ladders (levels in turn, each its groups, quorum and timeout), and who will be asked (simulate).

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: ladders-test }
scope: { level: tenant }
rules:
  - name: deploy-ladder
    match: { tool: ladder_tool, operation: Deploy }
    decision: REQUIRE_APPROVAL
    reason: deploys climb the ladder
    approval:
      levels:
        - { approvers: [sre], timeout: 5s }
        - { approvers: [sre-leads], timeout: 5s }
        - { approvers: [cto], timeout: 1m }
      on_timeout: DENY
  - name: quick-ladder
    match: { tool: ladder_tool, operation: Rollback }
    decision: REQUIRE_APPROVAL
    approval:
      levels:
        - { approvers: [sre], timeout: 1s }
        - { approvers: [sre-leads], timeout: 1s }
        - { approvers: [cto], timeout: 1s }
  - name: finance-review
    match: { tool: vendor_tool }
    decision: REQUIRE_APPROVAL
    reason: vendor payments need finance
    approval: { approvers: [finance], timeout: 1h }
  - name: security-review
    match: { tool: vendor_tool }
    condition: amount > 100
    decision: REQUIRE_APPROVAL
    reason: large vendor payments need security
    approval: { approvers: [security], timeout: 1h }
  - name: money-needs-security
    match: { risk_tags: [money] }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [security], timeout: 1h }
`;

type Who = { id: string; key: string };
const as = (stack: TestStack, who: Who) => ({ url: stack.url, key: who.key });
const runEvents = async (stack: TestStack, id: string) =>
  (await stack.db.query<{ type: string; data: any }>('SELECT type, data FROM events WHERE stream_id = $1 ORDER BY stream_version', [`run/${id}`])).rows;
const receiptOf = (stack: TestStack, id: string, until: (r: any) => boolean) => eventually(async () => {
  const r = await api(stack, 'GET', `/v1/decisions/${id}/receipt`);
  return r.status === 200 && until(r.body.receipt) ? r.body.receipt : undefined;
}, 60_000, 'the receipt');

describe('approval requirements and escalation ladders', () => {
  let stack: TestStack;
  let bot: Who, sam: Who, sue: Who, lee: Who, cy: Who, fay: Who, fred: Who, sec: Who;

  beforeAll(async () => {
    stack = await startTestStack();
    await activateYaml(stack, POLICY);
    bot = await addPrincipal(stack, { name: 'pay-bot', kind: 'agent', roles: ['agent'] });
    sam = await addPrincipal(stack, { name: 'Sam', roles: ['approver'], groups: ['sre'] });
    sue = await addPrincipal(stack, { name: 'Sue', roles: ['approver'], groups: ['sre'], email: 'sue@example.com' });
    lee = await addPrincipal(stack, { name: 'Lee', roles: ['approver'], groups: ['sre-leads'] });
    cy = await addPrincipal(stack, { name: 'Cy', roles: ['approver'], groups: ['cto'] });
    fay = await addPrincipal(stack, { name: 'Fay', roles: ['approver'], groups: ['finance'] });
    fred = await addPrincipal(stack, { name: 'Fred', roles: ['approver'], groups: ['finance'] });
    sec = await addPrincipal(stack, { name: 'Sec', roles: ['approver'], groups: ['security'] });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const ask = (body: object) => api(as(stack, bot), 'POST', '/v1/decisions', { agent: { id: 'pay-bot' }, ...body });

  it('a three-level ladder: each level notified in turn, a later level answers only once reached, the receipt shows who was asked at each', async () => {
    const res = await ask({ action: { tool: 'ladder_tool', operation: 'Deploy', args: { service: 'api' } } });
    expect(res.body).toMatchObject({ decision: 'REQUIRE_APPROVAL', status: 'pending_approval' });
    const id = res.body.decision_id;
    expect(res.body.approval_requirements).toBeUndefined();
    const first = await eventually(async () => ((await api(stack, 'GET', `/v1/decisions/${id}`)).body.approval_requirements as any[] | undefined));
    expect(first).toMatchObject([{ rule: 'deploy-ladder', level: 0, levels: 3, groups: ['sre'], quorum: 1, approvals: 0, status: 'open' }]);
    // The CTO is the last level: not asked yet, so not counted.
    const early = await api(as(stack, cy), 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
    expect(early.status).toBe(409);
    expect(early.body.detail).toMatch(/none of the round's groups \(sre\)/);

    // Two deadlines later the ladder is at the CTO; the inbox shows it there.
    await eventually(async () => ((await runEvents(stack, id)).filter((e) => e.type === 'ApprovalEscalated').length >= 2 ? true : undefined), 60_000, 'two escalations');
    const inbox = await api(as(stack, cy), 'GET', '/v1/approvals');
    expect(inbox.body.items.find((i: any) => i.decision_id === id)?.requirements).toMatchObject([{ level: 2, groups: ['sre', 'sre-leads', 'cto'] }]);
    const ok = await api(as(stack, cy), 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve', comment: 'ship it' });
    expect(ok.body).toMatchObject({ counted: true, decision_status: 'final' });

    const events = await runEvents(stack, id);
    expect(events.filter((e) => e.type === 'ApprovalEscalated').map((e) => [e.data.level, e.data.groups, e.data.requirements.map((r: any) => r.level)])).toEqual([
      [1, ['sre', 'sre-leads'], [1]], [2, ['sre', 'sre-leads', 'cto'], [2]],
    ]);
    const notices = events.filter((e) => e.type === 'NotificationSent' && e.data.channel === 'dashboard');
    expect(notices.filter((e) => e.data.purpose === 'escalation').map((e) => e.data.recipient).sort()).toEqual([lee.id, cy.id].sort());
    const receipt = await receiptOf(stack, id, (r) => r.status === 'final');
    expect(receipt.decision).toBe('ALLOW');
    expect(receipt.approval_rounds).toHaveLength(1);
    const levels = receipt.approval_rounds[0].levels;
    expect(levels.map((l: any) => [l.level, [...l.asked].sort()])).toEqual([[0, [sam.id, sue.id].sort()], [1, [lee.id]], [2, [cy.id]]]);
    expect(receipt.approval_rounds[0].requirements).toMatchObject([{ rule: 'deploy-ladder', level: 2, status: 'approved', approved_by: [cy.id] }]);
  });

  it('a ladder nobody answers climbs every level, then falls back', async () => {
    const res = await ask({ action: { tool: 'ladder_tool', operation: 'Rollback' } });
    const id = res.body.decision_id;
    const final = await eventually(async () => {
      const r = await api(stack, 'GET', `/v1/decisions/${id}?wait=20`);
      return r.body.status === 'final' ? r.body : undefined;
    }, 60_000, 'the fallback');
    expect(final).toMatchObject({ decision: 'DENY', reason_code: 'approval_expired' });
    expect(final.approval_requirements).toMatchObject([{ status: 'expired', level: 2 }]);
    const types = (await runEvents(stack, id)).map((e) => e.type).filter((t) => t.startsWith('Approval') || t === 'DecisionFinalized');
    expect(types).toEqual(['ApprovalRequested', 'ApprovalEscalated', 'ApprovalEscalated', 'ApprovalExpired', 'DecisionFinalized']);
  });

  it('two rules asking different groups: both must approve; one group twice is not enough; the receipt shows both', async () => {
    const res = await ask({ action: { tool: 'vendor_tool', args: { vendor: 'acme' } }, context: { amount: 500 } });
    const id = res.body.decision_id;
    const reqs = await eventually(async () => ((await api(stack, 'GET', `/v1/decisions/${id}`)).body.approval_requirements as any[] | undefined));
    expect(reqs.map((r) => [r.rule, r.groups])).toEqual([['finance-review', ['finance']], ['security-review', ['security']]]);
    // Both groups' members see it in their inbox, with both requirements.
    for (const who of [fay, sec]) {
      const inbox = await eventually(async () => (await api(as(stack, who), 'GET', '/v1/approvals')).body.items.find((i: any) => i.decision_id === id));
      expect(inbox.requirements.map((r: any) => r.rule)).toEqual(['finance-review', 'security-review']);
    }
    expect((await api(as(stack, fay), 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' })).body).toMatchObject({ counted: true, decision_status: 'pending_approval' });
    expect((await api(as(stack, fred), 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' })).body).toMatchObject({ counted: true, decision_status: 'pending_approval' });
    const mid = await api(stack, 'GET', `/v1/decisions/${id}`);
    // Finance's requirement was met by the first approval; the second is recorded and counts for nothing else.
    expect(mid.body.approval_requirements.map((r: any) => [r.status, r.approvals])).toEqual([['approved', 1], ['open', 0]]);
    const last = await api(as(stack, sec), 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
    expect(last.body).toMatchObject({ counted: true, decision_status: 'final' });
    const receipt = await receiptOf(stack, id, (r) => r.status === 'final');
    expect(receipt.decision).toBe('ALLOW');
    expect(receipt.approval_rounds[0].requirements.map((r: any) => [r.rule, r.status, [...r.approved_by].sort()])).toEqual([
      ['finance-review', 'approved', [fay.id]], ['security-review', 'approved', [sec.id]],
    ]);
  });

  it('a rejection by any requirement’s group ends the round; the circuit breaker is a requirement beside a tenant rule', async () => {
    const res = await ask({ action: { tool: 'vendor_tool' }, context: { amount: 500 } });
    const id = res.body.decision_id;
    await eventually(async () => ((await api(stack, 'GET', `/v1/decisions/${id}`)).body.approval_requirements ? true : undefined));
    await api(as(stack, fay), 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
    const no = await api(as(stack, sec), 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'reject', comment: 'unknown vendor' });
    expect(no.body).toMatchObject({ counted: true, decision_status: 'final' });
    expect((await api(stack, 'GET', `/v1/decisions/${id}`)).body).toMatchObject({ decision: 'DENY', reason_code: 'approval_rejected' });

    const pay = await ask({ action: { tool: 'payment_tool', operation: 'Payment' }, context: { risk_tags: ['money'] } });
    const reqs = await eventually(async () => ((await api(stack, 'GET', `/v1/decisions/${pay.body.decision_id}`)).body.approval_requirements as any[] | undefined));
    expect(reqs.map((r) => [r.policy_id, r.groups])).toEqual([['ladders-test', ['security']], ['builtin.circuit-breakers', ['approvers']]]);
  });

  it('who will be asked: simulate answers each requirement’s levels, deadlines and the people each would notify', async () => {
    const at = '2026-12-07T00:00:00.000Z';
    const sim = await api(stack, 'POST', '/v1/policy/simulate', { request: { agent: { id: 'pay-bot' }, action: { tool: 'ladder_tool', operation: 'Deploy' } }, at });
    expect(sim.status).toBe(200);
    const route = sim.body.approval_route;
    expect(route).toHaveLength(1);
    expect(route[0].levels.map((l: any) => [l.groups, l.starts_at, l.deadline, l.notified.map((p: any) => p.principal_id).sort()])).toEqual([
      [['sre'], at, '2026-12-07T00:00:05.000Z', [sam.id, sue.id].sort()],
      [['sre-leads'], '2026-12-07T00:00:05.000Z', '2026-12-07T00:00:10.000Z', [lee.id]],
      [['cto'], '2026-12-07T00:00:10.000Z', '2026-12-07T00:01:10.000Z', [cy.id]],
    ]);
    expect(route[0].levels[0].notified.find((p: any) => p.principal_id === sam.id).channels).toEqual(['dashboard']);
    expect(route[0]).toMatchObject({ on_timeout: 'DENY', final_deadline: '2026-12-07T00:01:10.000Z' });
    const two = await api(stack, 'POST', '/v1/policy/simulate', { request: { agent: { id: 'pay-bot' }, action: { tool: 'vendor_tool' }, context: { amount: 500 } }, at });
    expect(two.body.approval_route.map((r: any) => [r.rule, r.levels[0].notified.map((p: any) => p.principal_id).sort()])).toEqual([
      ['finance-review', [fay.id, fred.id].sort()], ['security-review', [sec.id]],
    ]);
    const allow = await api(stack, 'POST', '/v1/policy/simulate', { request: { agent: { id: 'pay-bot' }, action: { tool: 'search_tool' } } });
    expect(allow.body.approval_route).toBeUndefined();
  });
});
