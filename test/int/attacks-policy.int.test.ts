import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPolicyChain } from '../../services/lifecycle/policy-chain.ts';
import { api, eventually, startTestStack, type TestStack } from './harness.ts';

/**
 * Attacks on policy evaluation and on the policy lifecycle, tried as an agent or an author would:
 * - CEL bodies built to stall the API (nested comprehensions, map over map, string doubling, deep nesting),
 *   per call, in simulation and in a stored policy: each is refused (422 naming the field) or decided DENY
 *   (naming the rule), and ordinary decisions keep being answered while they stream in;
 * - per-call rules that smuggle approval settings (who approves, timeout, on_timeout ALLOW, escalation);
 * - rollback, deprecate, bind and unbind used to walk around four-eyes and the validation gate;
 * - lifecycle changes by roles that may not activate.
 * Each prints `attack <name>: N attempts, 0 got through` and asserts the 0.
 */
let stack: TestStack;
const RUN = randomUUID().slice(0, 8);
const as = (key: string) => ({ url: stack.url, key });
const report = (name: string, attempts: number, through: string[]) => {
  console.log(`attack ${name}: ${attempts} attempts, ${through.length} got through`);
  expect(through).toEqual([]);
};

async function newTenant(settings: Record<string, unknown>, defaultDecision?: string): Promise<{ id: string; admin: string }> {
  const id = `pa-${RUN}-${randomUUID().slice(0, 6)}`;
  const res = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id, name: id, settings, ...(defaultDecision ? { default_decision: defaultDecision } : {}) });
  expect(res.status).toBe(201);
  return { id, admin: res.body.admin_api_key };
}

async function principalIn(adminKey: string, name: string, roles: string[]): Promise<{ id: string; key: string }> {
  const res = await api(as(adminKey), 'POST', '/v1/principals', { name, kind: roles.includes('agent') ? 'agent' : 'person', roles });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id: res.body.id, key: res.body.api_key };
}

const p99 = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(s.length * 0.99) - 1)] ?? NaN;
};

beforeAll(async () => {
  stack = await startTestStack();
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

describe('CEL cost is bounded', () => {
  it('worst-case bodies are refused or denied while ordinary decisions keep being answered', async () => {
    const t = await newTenant({}, 'ALLOW');
    const bot = await principalIn(t.admin, 'pay-bot', ['agent']);
    const agent = { id: 'pay-bot' };
    // A stored rule an agent can feed a large list to: it must fail closed, not stall.
    const stored = {
      apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'cel-stored', name: 'cel-stored' },
      rules: [{ name: 'pairwise', match: { tool: 'cel_tool' }, condition: 'items.exists(a, items.exists(b, a == b + "x"))', decision: 'ALLOW' }],
    };
    expect((await api(as(t.admin), 'POST', '/v1/policies', stored)).status).toBe(201);
    expect((await api(as(t.admin), 'POST', '/v1/policies/cel-stored/activate')).status).toBe(200);

    const big = Array.from({ length: 45_000 }, (_, i) => `s${i}`);
    const s = 'x'.repeat(60_000);
    const doubling = 'cel.bind(a, s + s, cel.bind(b, a + a, cel.bind(c, b + b, cel.bind(d, c + c, cel.bind(e, d + d, cel.bind(f, e + e, cel.bind(g, f + f, cel.bind(h, g + g, cel.bind(i, h + h, cel.bind(j, i + i, j + j == ""))))))))))';
    const deepExpr = `${'['.repeat(2000)}1${']'.repeat(2000)}.size() > 0`;
    const nested = (depth: number): Record<string, unknown> => (depth === 0 ? { xs: big.slice(0, 20_000) } : { d: nested(depth - 1) });
    const perCall = (condition: string, context: Record<string, unknown>) => ({ agent, action: { tool: 'search_tool' }, context, policy_rules: [{ name: 'costly', condition, decision: 'DENY' }] });
    type Shape = { name: string; route: string; body: () => unknown; want: 'refused' | 'deny' };
    const shapes: Shape[] = [
      { name: 'nested exists', route: '/v1/decisions', body: () => perCall('xs.exists(a, xs.exists(b, a == b + "x"))', { xs: big }), want: 'refused' },
      { name: 'map over map', route: '/v1/decisions', body: () => perCall('xs.map(a, xs.map(b, b + a)).size() > 0', { xs: big }), want: 'refused' },
      { name: 'membership in a loop', route: '/v1/decisions', body: () => perCall('xs.exists(a, a in xs)', { xs: big }), want: 'refused' },
      { name: 'string doubling', route: '/v1/decisions', body: () => perCall(doubling, { s }), want: 'refused' },
      { name: 'split growth in a loop', route: '/v1/decisions', body: () => perCall('xs.exists(a, s.split("").exists(c, c == a))', { xs: big.slice(0, 20_000), s }), want: 'refused' },
      { name: 'deep path into nested input', route: '/v1/decisions', body: () => perCall(`${'d.'.repeat(12)}xs.exists(a, ${'d.'.repeat(12)}xs.exists(b, a == b))`, nested(12)), want: 'refused' },
      { name: 'deeply nested expression', route: '/v1/decisions', body: () => perCall(deepExpr, {}), want: 'deny' },
      { name: 'stored rule fed a large list', route: '/v1/decisions', body: () => ({ agent, action: { tool: 'cel_tool' }, context: { items: big } }), want: 'deny' },
      {
        name: 'simulated draft', route: '/v1/policy/simulate',
        body: () => ({ request: { agent, action: { tool: 'cel_tool' }, context: { items: big } }, policy: { ...stored, metadata: { id: 'cel-draft', name: 'cel-draft' } } }),
        want: 'refused',
      },
      { name: 'simulated per-call rule', route: '/v1/policy/simulate', body: () => ({ request: perCall('xs.map(a, xs.map(b, b)).size() > 0', { xs: big }) }), want: 'refused' },
    ];

    const ordinary = async (): Promise<number> => {
      const t0 = performance.now();
      const r = await api(as(bot.key), 'POST', '/v1/decisions', { agent, action: { tool: 'search_tool' }, context: { amount: 5 }, idempotency_key: randomUUID() });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return performance.now() - t0;
    };
    for (let i = 0; i < 5; i++) await ordinary(); // warm up
    const before: number[] = [];
    for (let i = 0; i < 40; i++) before.push(await ordinary());

    const ROUNDS = 4;
    // A control: bodies as large, with no per-call rules and no draft, so the figures separate the cost of
    // carrying 45,000 values from the cost of the conditions.
    const plain = (body: unknown): unknown => {
      const b = body as { request?: Record<string, unknown>; policy_rules?: unknown; policy?: unknown };
      if (b.request !== undefined) return { request: { ...b.request, policy_rules: [] } };
      return { ...(b as object), policy_rules: [], action: { tool: 'search_tool' } };
    };
    const measureDuring = async (stream: () => Promise<void>): Promise<number[]> => {
      let streaming = true;
      const done = stream().finally(() => { streaming = false; });
      const times: number[] = [];
      while (streaming) times.push(await ordinary());
      await done;
      return times;
    };
    const control = await measureDuring(async () => {
      for (let round = 0; round < ROUNDS; round++) {
        await Promise.all(shapes.map(async (shape) => {
          const res = await api(as(bot.key), 'POST', shape.route, shape.route === '/v1/decisions' ? { ...(plain(shape.body()) as object), idempotency_key: randomUUID() } : plain(shape.body()));
          expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
        }));
      }
    });

    const through: string[] = [];
    let answered = 0;
    let sent = 0;
    const during = await measureDuring(async () => {
      for (let round = 0; round < ROUNDS; round++) {
        await Promise.all(shapes.map(async (shape) => {
          sent++;
          const body = shape.body();
          const res = await api(as(bot.key), 'POST', shape.route, shape.route === '/v1/decisions' ? { ...(body as object), idempotency_key: randomUUID() } : body);
          answered++;
          const ok = shape.want === 'refused'
            ? res.status === 422 && Array.isArray(res.body?.errors) && res.body.errors.some((e: { path: string; message: string }) => /condition/.test(e.path) && /CEL cost budget/.test(e.message))
            : res.status === 200 && res.body?.decision === 'DENY' && /could not be evaluated|failing closed/.test(res.body?.reason ?? '');
          if (!ok) through.push(`${shape.name}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
        }));
      }
    });

    console.log(`ordinary decisions p99: ${p99(before).toFixed(1)} ms before the stream (${before.length}), ${p99(during).toFixed(1)} ms during the worst-case stream (${during.length}), ${p99(control).toFixed(1)} ms during a stream of bodies as large without conditions (${control.length})`);
    // Every worst-case request was answered (none left hanging past the test), and the API kept answering others.
    expect(answered).toBe(sent);
    expect(sent).toBe(ROUNDS * shapes.length);
    expect(during.length).toBeGreaterThan(0);
    report('cel-worst-case-bodies', sent, through);
  }, 600_000);
});

describe('per-call rules only tighten', () => {
  it('never supply approval settings', async () => {
    const t = await newTenant({}, 'REQUIRE_APPROVAL');
    const bot = await principalIn(t.admin, 'pay-bot', ['agent']);
    const agent = { id: 'pay-bot' };
    const approval = { approvers: ['nobody'], timeout: '1s', on_timeout: 'ALLOW' };
    const variants: Array<{ name: string; rule: Record<string, unknown>; path: string }> = [
      { name: 'the issue\'s body', rule: { decision: 'REQUIRE_APPROVAL', approval }, path: 'approval' },
      { name: 'matching the tool', rule: { name: 'mine', match: { tool: 'shell_exec' }, decision: 'REQUIRE_APPROVAL', approval }, path: 'approval' },
      { name: 'escalation to the agent\'s own group', rule: { decision: 'REQUIRE_APPROVAL', approval: { approvers: ['approvers'], escalate_to: ['bots'], escalate_after: '1m' } }, path: 'approval' },
      { name: 'quorum and a long timeout', rule: { decision: 'REQUIRE_APPROVAL', approval: { approvers: ['approvers'], quorum: 1, timeout: '366d' } }, path: 'approval' },
      { name: 'on_timeout alone', rule: { decision: 'REQUIRE_APPROVAL', approval: { approvers: ['approvers'], on_timeout: 'ALLOW' } }, path: 'approval' },
      { name: 'a sentence naming approvers', rule: { text: 'Require nobody approval for shell_exec' }, path: 'text' },
      { name: 'an effect rule naming approvers', rule: { condition: 'Require nobody approval for shell_exec', effect: 'require_human_approval' }, path: 'condition' },
      { name: 'a sentence with an approval block', rule: { text: 'Require approval for shell_exec', approval }, path: 'approval' },
      { name: 'after a harmless rule', rule: { decision: 'REQUIRE_APPROVAL', approval, condition: 'true' }, path: 'approval' },
    ];
    const through: string[] = [];
    let attempts = 0;
    for (const v of variants) {
      const rules = v.name === 'after a harmless rule' ? [{ decision: 'DENY', condition: 'false' }, v.rule] : [v.rule];
      const at = v.name === 'after a harmless rule' ? 1 : 0;
      for (const route of ['/v1/decisions', '/v1/policy/simulate']) {
        attempts++;
        const request = { agent, action: { tool: 'shell_exec' }, policy_rules: rules };
        const res = await api(as(bot.key), 'POST', route, route === '/v1/decisions' ? { ...request, idempotency_key: randomUUID() } : { request });
        const want = route === '/v1/decisions' ? `body.policy_rules.${at}.${v.path}` : `request.policy_rules[${at}].${v.path}`;
        const ok = res.status === 422 && (res.body?.errors ?? []).some((e: { path: string }) => e.path === want);
        if (!ok) through.push(`${v.name} via ${route}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
      }
    }
    // A per-call REQUIRE_APPROVAL without settings is taken, and its round has the tenant's defaults, not the request's.
    attempts++;
    const taken = await api(as(bot.key), 'POST', '/v1/decisions', { agent, action: { tool: 'shell_exec' }, policy_rules: [{ decision: 'REQUIRE_APPROVAL' }], idempotency_key: randomUUID() });
    expect(taken.body).toMatchObject({ decision: 'REQUIRE_APPROVAL', status: 'pending_approval' });
    const round = await eventually(async () => (await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE stream_id = $1 AND type = 'ApprovalRequested'`, [`run/${taken.body.decision_id}`])).rows[0]?.data);
    if (round.on_timeout !== 'DENY' || round.groups.join() !== 'approvers' || round.level_timeout_sec !== 3600) through.push(`defaults: ${JSON.stringify(round)}`);
    // Nothing was started for the refused ones: only the one taken has a run.
    const runs = await stack.db.query(`SELECT 1 FROM events WHERE type = 'DecisionRequested' AND tenant_id = $1`, [t.id]);
    if (runs.rowCount !== 1) through.push(`runs started: ${runs.rowCount}`);
    report('per-call-approval-smuggling', attempts, through);
  }, 120_000);
});

describe('every change of the active set goes through the gates', () => {
  const doc = (id: string, decision: string) => ({ apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: id }, rules: [{ name: 'gate', match: { tool: `${id}_tool` }, decision }] });
  const policyEvents = async (tenant: string) => Number((await stack.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM events WHERE tenant_id = $1 AND (stream_id LIKE 'policy/%' OR stream_id LIKE 'agent/%') AND type NOT LIKE 'PolicyActivation%'`, [tenant])).rows[0]!.n);

  it('rollback, deprecate, bind and unbind open a review under four-eyes; nothing is live until a second admin approves', async () => {
    const t = await newTenant({ policy_four_eyes: true });
    const second = await principalIn(t.admin, 'second-admin', ['admin']);
    const author = await principalIn(t.admin, 'author', ['author']);
    const id = `fe-${RUN}`;
    const approve = async (policyId: string, key = second.key) => api(as(key), 'POST', `/v1/policies/${policyId}/activation/approvals`, { verdict: 'approve' });
    // v1 DENY and v2 ALLOW, each activated through a review.
    expect((await api(as(author.key), 'POST', '/v1/policies', doc(id, 'DENY'))).status).toBe(201);
    expect((await api(as(author.key), 'POST', `/v1/policies/${id}/activate`)).status).toBe(202);
    expect((await approve(id)).status).toBe(200);
    expect((await api(as(author.key), 'POST', `/v1/policies/${id}/clone`)).status).toBe(201);
    expect((await api(as(author.key), 'PUT', `/v1/policies/${id}`, doc(id, 'ALLOW'))).status).toBe(200);
    expect((await api(as(author.key), 'POST', `/v1/policies/${id}/activate`)).status).toBe(202);
    expect((await approve(id)).status).toBe(200);
    expect((await api(as(t.admin), 'GET', `/v1/policies/${id}`)).body.active_version).toBe(2);

    const through: string[] = [];
    let attempts = 0;
    const agentId = `bound-${RUN}`;
    const binding = async () => (await api(as(t.admin), 'GET', `/v1/agents/${agentId}/binding`)).body.policy_id;
    const state = async () => {
      const p = (await api(as(t.admin), 'GET', `/v1/policies/${id}`)).body;
      return { active: p.active_version, status: p.status, bound: await binding(), events: await policyEvents(t.id) };
    };
    // Each change by the author (and by the admin): 202 with a review, and nothing changed until it is approved.
    const tries: Array<{ name: string; method: string; route: string; body?: unknown; applied: (s: Awaited<ReturnType<typeof state>>) => boolean }> = [
      { name: 'rollback', method: 'POST', route: `/v1/policies/${id}/rollback`, body: { to_version: 1 }, applied: (s) => s.active !== 2 },
      { name: 'deprecate', method: 'POST', route: `/v1/policies/${id}/deprecate`, applied: (s) => s.active !== 2 || s.status !== 'active' },
      { name: 'bind', method: 'POST', route: `/v1/agents/${agentId}/binding`, body: { policy_id: id }, applied: (s) => s.bound !== null },
    ];
    for (const who of [author.key, t.admin]) {
      for (const x of tries) {
        attempts++;
        const before = await state();
        const res = await api(as(who), x.method, x.route, x.body);
        const after = await state();
        if (res.status !== 202 || res.body.status !== 'pending_approval' || x.applied(after) || after.events !== before.events) {
          through.push(`${x.name}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
        }
        // The requester cannot approve their own change; a second admin can reject it.
        attempts++;
        const own = await approve(id, who);
        if (own.status === 200) through.push(`${x.name} approved by its requester`);
        const rejected = await api(as(who === t.admin ? second.key : t.admin), 'POST', `/v1/policies/${id}/activation/approvals`, { verdict: 'reject' });
        expect(rejected.status, JSON.stringify(rejected.body)).toBe(200);
        if (x.applied(await state())) through.push(`${x.name} applied after a rejection`);
      }
    }

    // Approved by a second admin, each change is applied, with who approved it recorded.
    expect((await api(as(author.key), 'POST', `/v1/agents/${agentId}/binding`, { policy_id: id })).status).toBe(202);
    expect((await approve(id)).status).toBe(200);
    expect(await binding()).toBe(id);
    const bound = (await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE tenant_id = $1 AND type = 'PolicyBound'`, [t.id])).rows;
    expect(bound.map((r) => r.data)).toEqual([expect.objectContaining({ policy_id: id, by: author.id, approved_by: second.id })]);
    // Unbind now that the agent is bound: a review too.
    attempts++;
    const unbind = await api(as(author.key), 'DELETE', `/v1/agents/${agentId}/binding`);
    if (unbind.status !== 202 || (await binding()) !== id) through.push(`unbind: ${unbind.status} ${JSON.stringify(unbind.body).slice(0, 200)}`);
    expect((await approve(id)).status).toBe(200);
    expect(await binding()).toBeNull();

    const rb = await api(as(author.key), 'POST', `/v1/policies/${id}/rollback`, { to_version: 1 });
    expect(rb.status).toBe(202);
    const ok = await approve(id);
    expect(ok.body).toMatchObject({ counted: true, status: 'approved', version: 3 });
    const p = (await api(as(t.admin), 'GET', `/v1/policies/${id}/versions`)).body.items;
    expect(p.at(-1)).toMatchObject({ version: 3, rolled_back_to: 1, approved_by: second.id });

    // While a change waits for its review, nothing else about the policy moves.
    expect((await api(as(author.key), 'POST', `/v1/policies/${id}/deprecate`)).status).toBe(202);
    attempts++;
    const racing = await api(as(t.admin), 'POST', `/v1/policies/${id}/rollback`, { to_version: 2 });
    if (racing.status !== 409) through.push(`a second change while one waits: ${racing.status}`);
    expect((await approve(id)).status).toBe(200);
    expect((await api(as(t.admin), 'GET', `/v1/policies/${id}`)).body.status).toBe('deprecated');

    // The auditor's chain check accepts each reviewed change (its approval is in the log).
    const chain = await stack.db.query<{ type: string; data: any; recorded_at: string; stream_version: number; position: string }>(
      `SELECT type, data, to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS recorded_at, stream_version, position::text FROM events WHERE tenant_id = $1 AND stream_id LIKE 'policy/%' ORDER BY stream_version`, [t.id]);
    expect(checkPolicyChain(id, chain.rows).problems).toEqual([]);
    report('four-eyes-bypass-via-rollback-deprecate-bind-unbind', attempts, through);
  }, 180_000);

  it('a rollback does not walk around the validation gate', async () => {
    const through: string[] = [];
    let attempts = 0;
    for (const settings of [{ policy_require_validation: true }, { policy_refuse_loosening: true }, { policy_require_validation: true, policy_four_eyes: true }]) {
      const t = await newTenant({});
      const id = `vg-${RUN}`;
      expect((await api(as(t.admin), 'POST', '/v1/policies', doc(id, 'ALLOW'))).status).toBe(201);
      expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/activate`)).status).toBe(200);
      expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/clone`)).status).toBe(201);
      expect((await api(as(t.admin), 'PUT', `/v1/policies/${id}`, doc(id, 'DENY'))).status).toBe(200);
      expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/activate`)).status).toBe(200);
      expect((await api(as(t.admin), 'PATCH', `/v1/tenants/${t.id}`, { settings })).status).toBe(200);
      attempts++;
      const before = await policyEvents(t.id);
      const res = await api(as(t.admin), 'POST', `/v1/policies/${id}/rollback`, { to_version: 1 });
      const rolledBack = (await api(as(t.admin), 'GET', `/v1/policies/${id}`)).body.active_version !== 2;
      if (res.status !== 409 || res.body.reason !== 'not_validated' || (await policyEvents(t.id)) !== before || rolledBack) through.push(`${JSON.stringify(settings)}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      // The gated path stays open: clone v1, validate, activate.
      if (!settings.policy_four_eyes) {
        expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/clone`, { from_version: 1 })).status).toBe(201);
        expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/validate`)).status).toBe(200);
        expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/activate`)).status).toBe(200);
      }
    }
    report('rollback-around-validation-gate', attempts, through);
  }, 180_000);

  it('only roles that may activate change the active set', async () => {
    const t = await newTenant({});
    const id = `role-${RUN}`;
    expect((await api(as(t.admin), 'POST', '/v1/policies', doc(id, 'DENY'))).status).toBe(201);
    expect((await api(as(t.admin), 'POST', `/v1/policies/${id}/activate`)).status).toBe(200);
    expect((await api(as(t.admin), 'POST', `/v1/agents/bound-bot/binding`, { policy_id: id })).status).toBe(200);
    const through: string[] = [];
    let attempts = 0;
    for (const roles of [['agent'], ['approver'], ['auditor']]) {
      const who = await principalIn(t.admin, `${roles[0]}-${RUN}`, roles);
      for (const [method, route, body] of [
        ['POST', `/v1/policies/${id}/activate`, undefined], ['POST', `/v1/policies/${id}/rollback`, { to_version: 1 }], ['POST', `/v1/policies/${id}/deprecate`, undefined],
        ['POST', `/v1/agents/other-bot/binding`, { policy_id: id }], ['DELETE', `/v1/agents/bound-bot/binding`, undefined], ['POST', `/v1/policies/${id}/activation/approvals`, { verdict: 'approve' }],
      ] as const) {
        attempts++;
        const before = await policyEvents(t.id);
        const res = await api(as(who.key), method, route, body);
        if (res.status !== 403 || (await policyEvents(t.id)) !== before) through.push(`${roles.join()} ${method} ${route}: ${res.status}`);
      }
    }
    report('lifecycle-change-by-wrong-role', attempts, through);
  }, 120_000);
});
