import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type TestStack } from './harness.ts';

// Delegation while away: an approver names another member of the same group to answer for them. The delegate
// answers once, on behalf of the delegator; no delegation ever lets in someone outside the group, the requester,
// another tenant's member, a principal without the approver role, or one whose delegation ended.

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: delegation-test }
scope: { level: tenant }
rules:
  - name: payouts-need-two
    match: { tool: payout_tool }
    decision: REQUIRE_APPROVAL
    reason: payouts need two of finance
    approval: { approvers: [finance], quorum: 2, timeout: 1h }
`;

type Who = { id: string; key: string };
const RUN = Date.now().toString(36);
const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();
const report = (name: string, attempts: number, through: number) => console.log(`attack ${name}: ${attempts} attempts, ${through} got through`);
const runEvents = async (stack: TestStack, id: string) =>
  (await stack.db.query<{ type: string; data: any }>('SELECT type, data FROM events WHERE stream_id = $1 ORDER BY stream_version', [`run/${id}`])).rows;
const tenantEvents = async (stack: TestStack, type: string) =>
  (await stack.db.query<{ data: any }>("SELECT data FROM events WHERE stream_id = 'tenant/default' AND type = $1 ORDER BY stream_version", [type])).rows.map((r) => r.data);

describe('delegation', () => {
  let stack: TestStack;
  let bot: Who, ann: Who, dee: Who, fox: Who, gus: Who, sec: Who, nora: Who, op: Who;
  const as = (who: Who | string) => ({ url: stack.url, key: typeof who === 'string' ? who : who.key });
  const delegate = (by: Who | string, body: object) => api(as(by), 'POST', '/v1/delegations', body);
  const ask = async (who: Who, agent: string) => {
    const res = await api(as(who), 'POST', '/v1/decisions', { agent: { id: agent }, action: { tool: 'payout_tool', args: { to: `acct-${Math.random()}` } } });
    expect(res.body.decision).toBe('REQUIRE_APPROVAL');
    const id = res.body.decision_id as string;
    await eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'ApprovalRequested') ? true : undefined));
    return id;
  };
  const answer = (who: Who, id: string, verdict: 'approve' | 'reject' = 'approve') => api(as(who), 'POST', `/v1/decisions/${id}/approvals`, { verdict });
  const grantedBy = async (id: string, approver: string) => (await runEvents(stack, id)).find((e) => e.type === 'ApprovalGranted' && e.data.approver_id === approver)?.data;

  beforeAll(async () => {
    stack = await startTestStack();
    await activateYaml(stack, POLICY);
    bot = await addPrincipal(stack, { name: 'pay-bot', kind: 'agent', roles: ['agent'] });
    ann = await addPrincipal(stack, { name: 'Ann', roles: ['approver'], groups: ['finance'] });
    dee = await addPrincipal(stack, { name: 'Dee', roles: ['approver'], groups: ['finance'] });
    fox = await addPrincipal(stack, { name: 'Fox', roles: ['approver'], groups: ['finance'] });
    gus = await addPrincipal(stack, { name: 'Gus', roles: ['approver'], groups: ['finance'] });
    sec = await addPrincipal(stack, { name: 'Sec', roles: ['approver'], groups: ['security'] });
    nora = await addPrincipal(stack, { name: 'Nora', roles: ['author'], groups: ['finance'] });
    // A person who asks for an agent (acts_for) and is also a finance approver.
    op = await addPrincipal(stack, { name: 'Op', roles: ['agent', 'approver'], groups: ['finance'], acts_for: ['op-bot'] });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('a delegate is notified instead of the delegator, answers on their behalf once, and the receipt says so', async () => {
    const made = await delegate(ann, { to: dee.id, group: 'finance', ends_at: inAnHour() });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ from: ann.id, to: dee.id, group: 'finance', status: 'active' });
    expect((await tenantEvents(stack, 'DelegationGranted')).find((d) => d.delegation_id === made.body.id)).toMatchObject({ from: ann.id, to: dee.id, group: 'finance', by: ann.id });
    expect((await api(as(dee), 'GET', '/v1/delegations')).body.items.map((d: any) => d.id)).toContain(made.body.id);

    // Who will be asked: Dee, for Ann; Ann herself is away.
    const sim = await api(stack, 'POST', '/v1/policy/simulate', { request: { agent: { id: 'pay-bot' }, action: { tool: 'payout_tool' } } });
    const notified = sim.body.approval_route[0].levels[0].notified;
    expect(notified.map((p: any) => p.principal_id)).not.toContain(ann.id);
    expect(notified.find((p: any) => p.principal_id === dee.id)).toMatchObject({ on_behalf_of: [ann.id] });

    const id = await ask(bot, 'pay-bot');
    const recipients = await eventually(async () => {
      const n = (await runEvents(stack, id)).filter((e) => e.type === 'NotificationSent' && e.data.channel === 'dashboard').map((e) => e.data.recipient);
      return n.length > 0 ? n : undefined;
    });
    expect(recipients).toContain(dee.id);
    expect(recipients).not.toContain(ann.id);

    expect((await answer(dee, id)).body).toMatchObject({ counted: true, decision_status: 'pending_approval' });
    expect(await grantedBy(id, dee.id)).toMatchObject({ on_behalf_of: ann.id, delegation_id: made.body.id });
    const again = await answer(ann, id);
    expect(again.status).toBe(409);
    expect(again.body.detail).toMatch(/already answered/);
    expect((await answer(fox, id)).body).toMatchObject({ counted: true, decision_status: 'final' });
    const receipt = await eventually(async () => {
      const r = await api(stack, 'GET', `/v1/decisions/${id}/receipt`);
      return r.status === 200 && r.body.receipt.status === 'final' ? r.body.receipt : undefined;
    });
    expect(receipt.approvals.find((a: any) => a.approver_id === dee.id)).toMatchObject({ on_behalf_of: ann.id });

    const ended = await api(as(ann), 'DELETE', `/v1/delegations/${made.body.id}`);
    expect(ended.body).toMatchObject({ status: 'revoked' });
    expect((await tenantEvents(stack, 'DelegationRevoked')).map((d) => d.delegation_id)).toContain(made.body.id);
  });

  it('attack: delegations that must never be made', async () => {
    const t = await api(as(stack.bootstrapKey), 'POST', '/v1/tenants', { id: `dlg-${RUN}`, name: 'other' });
    expect(t.status).toBe(201);
    const foreign = await api(as(t.body.admin_api_key as string), 'POST', '/v1/principals', { name: 'Foreign', kind: 'person', roles: ['approver'], groups: ['finance'] });
    const soon = inAnHour();
    const attempts: Array<[string, Who, object, number[]]> = [
      ['outside the group', ann, { to: sec.id, group: 'finance', ends_at: soon }, [400]],
      ['for a group the delegator is not in', ann, { to: sec.id, group: 'security', ends_at: soon }, [400]],
      ['to the requesting agent', ann, { to: bot.id, group: 'finance', ends_at: soon }, [400]],
      ['to oneself', ann, { to: ann.id, group: 'finance', ends_at: soon }, [400]],
      ["to another tenant's member", ann, { to: foreign.body.id, group: 'finance', ends_at: soon }, [400]],
      ['to a member without the approver role', ann, { to: nora.id, group: 'finance', ends_at: soon }, [400]],
      ['by a member without the approver role', nora, { to: dee.id, group: 'finance', ends_at: soon }, [403]],
      ['by an agent', bot, { to: dee.id, group: 'finance', ends_at: soon }, [403]],
      ['forged: for someone else, not an admin', dee, { from: ann.id, to: dee.id, group: 'finance', ends_at: soon }, [403]],
      ['already expired', ann, { to: dee.id, group: 'finance', ends_at: new Date(Date.now() - 1000).toISOString() }, [400]],
      ['ending before it starts', ann, { to: dee.id, group: 'finance', starts_at: soon, ends_at: new Date(Date.now() + 60_000).toISOString() }, [400]],
      ['for longer than allowed', ann, { to: dee.id, group: 'finance', ends_at: new Date(Date.now() + 200 * 86_400_000).toISOString() }, [400]],
      ['with a forged field', ann, { to: dee.id, group: 'finance', ends_at: soon, on_behalf_of: sec.id }, [400]],
    ];
    const before = (await tenantEvents(stack, 'DelegationGranted')).length;
    let through = 0;
    for (const [what, by, body, expected] of attempts) {
      const res = await delegate(by, body);
      if (!expected.includes(res.status)) {
        through += 1;
        console.log(`  ${what}: ${res.status} ${JSON.stringify(res.body)}`);
      }
    }
    expect((await tenantEvents(stack, 'DelegationGranted')).length).toBe(before);
    report('delegation-grant', attempts.length, through);
    expect(through).toBe(0);
  });

  it('attack: revoking, reading or using a delegation that is not yours', async () => {
    const made = await delegate(ann, { to: gus.id, group: 'finance', ends_at: inAnHour() });
    expect(made.status).toBe(201);
    let attempts = 0;
    let through = 0;
    const tryIt = (ok: boolean) => { attempts += 1; if (!ok) through += 1; };
    // Neither the delegate nor another member revokes it; another tenant cannot even see it.
    tryIt((await api(as(gus), 'DELETE', `/v1/delegations/${made.body.id}`)).status === 403);
    tryIt((await api(as(sec), 'DELETE', `/v1/delegations/${made.body.id}`)).status === 403);
    tryIt(!(await api(as(sec), 'GET', '/v1/delegations')).body.items.some((d: any) => d.id === made.body.id));

    // A delegate who left the group answers nothing.
    await api(stack, 'PATCH', `/v1/principals/${gus.id}`, { groups: [] });
    const left = await ask(bot, 'pay-bot');
    tryIt((await answer(gus, left)).status === 409);
    tryIt((await grantedBy(left, gus.id)) === undefined);
    await api(stack, 'PATCH', `/v1/principals/${gus.id}`, { groups: ['finance'] });

    // A revoked delegation no longer makes its delegate answer for anyone.
    await api(as(ann), 'DELETE', `/v1/delegations/${made.body.id}`);
    const revoked = await ask(bot, 'pay-bot');
    await answer(gus, revoked);
    tryIt((await grantedBy(revoked, gus.id))?.on_behalf_of === undefined);

    // An expired one neither.
    const brief = await delegate(ann, { to: fox.id, group: 'finance', ends_at: new Date(Date.now() + 1500).toISOString() });
    expect(brief.status).toBe(201);
    await new Promise((r) => setTimeout(r, 2000));
    const expired = await ask(bot, 'pay-bot');
    await answer(fox, expired);
    tryIt((await grantedBy(expired, fox.id))?.on_behalf_of === undefined);

    // A delegate never answers the request it made itself (acting for an agent).
    expect((await delegate(ann, { to: op.id, group: 'finance', ends_at: inAnHour() })).status).toBe(201);
    const own = await ask(op, 'op-bot');
    const mine = await answer(op, own);
    tryIt(mine.status === 409 && /requester/.test(mine.body.detail));
    tryIt((await grantedBy(own, op.id)) === undefined);
    report('delegation-use', attempts, through);
    expect(through).toBe(0);
  });
});
