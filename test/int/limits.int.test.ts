import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type TestStack } from './harness.ts';

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: limits-test, name: Limits }
scope: { level: tenant }
rules:
  - name: lookup-rate
    match: { tool: lookup_tool }
    limit: { kind: rate, max: 2, window: 1h, per: agent }
    decision: DENY
    reason: more than 2 lookups an hour
  - name: lookups
    match: { tool: lookup_tool }
    decision: ALLOW
  - name: spend-cap
    match: { tool: spend_tool }
    limit: { kind: cost, max: 50, window: 1d, per: tenant, field: amount }
    decision: DENY
    reason: per-day spend cap 50 USD
  - name: spend
    match: { tool: spend_tool }
    decision: ALLOW
`;

describe('rate and cost limits decide from counters recorded in the log’s own database', () => {
  let stack: TestStack;
  const keys: Record<string, string> = {};
  beforeAll(async () => {
    stack = await startTestStack();
    await activateYaml(stack, POLICY);
    // Each agent asks with its own key (an agent is who its key says).
    for (const name of ['bot-a', 'bot-b']) keys[name] = (await addPrincipal(stack, { name, kind: 'agent', roles: ['agent'] })).key;
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const ask = (body: { agent: { id: string } } & Record<string, unknown>) => api({ url: stack.url, key: keys[body.agent.id]! }, 'POST', '/v1/decisions', body);
  const counted = (n: number) => eventually(async () => ((await stack.db.query('SELECT 1 FROM counter_entries')).rowCount! >= n ? true : undefined));

  it('allows up to the rate, then denies; the counts are facts in the run’s evaluation', async () => {
    const one = await ask({ agent: { id: 'bot-a' }, action: { tool: 'lookup_tool' } });
    expect(one.body.decision).toBe('ALLOW');
    await counted(1);
    expect((await ask({ agent: { id: 'bot-a' }, action: { tool: 'lookup_tool' } })).body.decision).toBe('ALLOW');
    await counted(2);
    const third = await ask({ agent: { id: 'bot-a' }, action: { tool: 'lookup_tool' } });
    expect(third.body).toMatchObject({ decision: 'DENY', matched_rule: 'lookup-rate' });
    // Per agent: another agent has its own count.
    expect((await ask({ agent: { id: 'bot-b' }, action: { tool: 'lookup_tool' } })).body.decision).toBe('ALLOW');
    const evaluated = await eventually(async () => {
      const r = await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE stream_id = $1 AND type = 'PolicyEvaluated'`, [`run/${third.body.decision_id}`]);
      return r.rows[0]?.data;
    });
    expect(Object.values(evaluated.evaluation.facts.counters)).toContain(2);
  });

  it('sums a cost field per tenant and denies the request that would pass the cap; a denied request counts nothing', async () => {
    expect((await ask({ agent: { id: 'bot-a' }, action: { tool: 'spend_tool' }, context: { amount: 30 } })).body.decision).toBe('ALLOW');
    await counted(4);
    const over = await ask({ agent: { id: 'bot-b' }, action: { tool: 'spend_tool' }, context: { amount: 25 } });
    expect(over.body).toMatchObject({ decision: 'DENY', matched_rule: 'spend-cap' });
    expect((await ask({ agent: { id: 'bot-b' }, action: { tool: 'spend_tool' }, context: { amount: 20 } })).body.decision).toBe('ALLOW');
    await counted(5);
    const cost = await stack.db.query<{ total: number }>(`SELECT sum(amount)::float8 AS total FROM counter_entries WHERE key LIKE 'cost%'`);
    expect(Number(cost.rows[0]!.total)).toBe(50);
  });
});
