import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type TestStack } from './harness.ts';

// The inbox (GET /v1/approvals) is chosen for the caller before it is limited: 300 open rounds of another
// group, asked first, never crowd out the caller's own rounds.

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: inbox, name: Rounds of two teams }
scope: { level: tenant }
rules:
  - name: theirs
    match: { tool: their_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [others], quorum: 1, timeout: 1h }
  - name: mine
    match: { tool: my_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [mine], quorum: 2, timeout: 2h }
  - name: escalated-to-mine
    match: { tool: escalating_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [others], quorum: 1, escalate_after: 1s, timeout: 3h, escalate_to: [mine] }
`;
const FOREIGN = 300;

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
  await activateYaml(stack, POLICY);
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

describe('the approver inbox', () => {
  it(`is complete and soonest first with ${FOREIGN} open rounds of another group in the tenant`, async () => {
    const bot = await addPrincipal(stack, { name: 'inbox-bot', kind: 'agent', roles: ['agent'] });
    const me = await addPrincipal(stack, { name: 'me', roles: ['approver'], groups: ['mine'] });
    const colleague = await addPrincipal(stack, { name: 'colleague', roles: ['approver'], groups: ['mine'] });
    const other = await addPrincipal(stack, { name: 'other', roles: ['approver'], groups: ['others'] });
    const ask = async (tool: string, i: number) => {
      const res = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'inbox-bot' }, action: { tool, args: { i } } });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.decision_id as string;
    };
    // The foreign rounds first: they are the tenant's oldest, and their deadlines the soonest.
    for (let i = 0; i < FOREIGN; i += 10) await Promise.all(Array.from({ length: 10 }, (_, j) => ask('their_tool', i + j)));
    const mine = [await ask('my_tool', 1), await ask('my_tool', 2), await ask('my_tool', 3)];
    const escalated = await ask('escalating_tool', 1);
    // An answered round leaves the answerer's inbox (it still needs a second approval from someone else).
    // The API answers at the start; the rounds are in the log once the worker has taken the runs' first tasks.
    const inLog = (id: string, type: string) => eventually(async () => ((await stack.db.query('SELECT 1 FROM events WHERE stream_id = $1 AND type = $2', [`run/${id}`, type])).rowCount ? true : undefined), 120_000, `${type} of ${id}`);
    for (const id of [...mine, escalated]) await inLog(id, 'ApprovalRequested');
    await eventually(async () => ((await stack.db.query<{ n: number }>("SELECT count(*)::int AS n FROM events WHERE type = 'ApprovalRequested'")).rows[0]!.n >= FOREIGN + 4 ? true : undefined), 120_000, 'every round');
    const counted = await api({ url: stack.url, key: colleague.key }, 'POST', `/v1/decisions/${mine[2]}/approvals`, { verdict: 'approve' });
    expect(counted.body, JSON.stringify(counted.body)).toMatchObject({ counted: true, round_status: 'open' });
    await inLog(escalated, 'ApprovalEscalated');

    const inbox = async (who: { key: string }, limit?: number) => {
      const res = await api({ url: stack.url, key: who.key }, 'GET', `/v1/approvals${limit ? `?limit=${limit}` : ''}`);
      expect(res.status).toBe(200);
      return res.body.items as Array<{ decision_id: string; deadline: string; groups: string[] }>;
    };
    const ids = (items: Array<{ decision_id: string }>) => items.map((x) => x.decision_id);

    const mineNow = await inbox(me);
    const named = { mine0: mine[0]!, mine1: mine[1]!, mine2: mine[2]!, escalated };
    expect(Object.entries(named).filter(([, id]) => !ids(mineNow).includes(id)).map(([n]) => n), JSON.stringify(mineNow)).toEqual([]);
    // Soonest deadline first: the escalated round (its level's deadline) is not due before the 2h ones.
    expect(new Set(ids(mineNow))).toEqual(new Set([...mine, escalated]));
    expect(mineNow.map((x) => x.deadline)).toEqual([...mineNow.map((x) => x.deadline)].sort());
    expect(mineNow.find((x) => x.decision_id === escalated)!.groups).toEqual(['others', 'mine']);
    expect(ids(await inbox(me, 2))).toEqual(ids(mineNow).slice(0, 2));
    expect(new Set(ids(await inbox(colleague)))).toEqual(new Set([mine[0], mine[1], escalated]));

    const theirs = await inbox(other, 500);
    expect(theirs).toHaveLength(FOREIGN + 1);
    expect(ids(theirs)).not.toContain(mine[0]);
    const missing = [...mine, escalated].filter((id) => !ids(mineNow).includes(id)).length;
    console.log(`attack inbox-crowding: ${FOREIGN} attempts, ${missing} got through`);
    expect(missing).toBe(0);
  }, 300_000);
});
