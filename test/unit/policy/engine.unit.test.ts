import { describe, expect, it } from 'vitest';
import { DecisionRequest, Evaluation } from '../../../schemas/decision.ts';
import {
  catalogFromMcp,
  catalogFromOpenApi,
  compile,
  counterIncrements,
  enrichRequest,
  evaluate,
  requiredCounters,
  simulate,
  type Snapshot,
} from '../../../services/policy/index.ts';

const NOW = new Date('2025-01-08T12:00:00Z');
const doc = (id: string, rules: unknown[], extra: Record<string, unknown> = {}) => ({ apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id }, rules, ...extra });
const req = (r: Record<string, unknown>) => DecisionRequest.parse({ agent: { id: 'bot' }, ...r });
function snap(...docs: unknown[]): Snapshot {
  const r = compile(docs.map((document, i) => ({ document, version: i + 1 })));
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.snapshot;
}

describe('snapshot hash', () => {
  const a = doc('a', [{ name: 'r', match: { tool: 'x' }, decision: 'ALLOW' }]);
  const b = doc('b', [{ name: 'r', match: { tool: 'y' }, decision: 'DENY' }]);
  it('is sha256 over the canonical JSON and does not depend on input order', () => {
    const s1 = snap(a, b);
    const r2 = compile([{ document: b, version: 2 }, { document: a, version: 1 }]);
    expect(r2.ok && r2.snapshot.hash).toBe(s1.hash);
    expect(s1.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
  it('changes with any rule change', () => {
    const c = doc('a', [{ name: 'r', match: { tool: 'x' }, decision: 'DENY' }]);
    expect(snap(c, b).hash).not.toBe(snap(a, b).hash);
  });
  it('an altered snapshot fails closed instead of deciding', () => {
    const s = JSON.parse(JSON.stringify(snap(a))) as Snapshot;
    s.policies[0]!.rules[0]!.decision = 'ALLOW';
    s.default_decision = 'ALLOW';
    const e = evaluate(s, req({ action: { tool: 'zzz' } }), {}, NOW);
    expect(e.decision).toBe('DENY');
    expect(e.reason).toContain('hash does not match');
  });
});

describe('evaluate is total', () => {
  const s = snap(doc('a', [{ name: 'r', condition: 'amount > 1', decision: 'ALLOW' }]));
  it('never throws on a bad clock, request or snapshot, and always answers DENY then', () => {
    const bad: [Snapshot, unknown, Date][] = [
      [s, req({ action: { tool: 't' } }), new Date('nope')],
      [s, {}, NOW],
      [s, null, NOW],
      [null as unknown as Snapshot, req({ action: { tool: 't' } }), NOW],
      [{ hash: 'x' } as unknown as Snapshot, req({ action: { tool: 't' } }), NOW],
    ];
    for (const [snapshot, request, now] of bad) {
      const e = evaluate(snapshot, request as DecisionRequest, {}, now);
      expect(e.decision).toBe('DENY');
      expect(Evaluation.safeParse(e).success).toBe(true);
    }
  });
  it('records facts and now', () => {
    const e = evaluate(s, req({ action: { tool: 't' }, context: { amount: 2 } }), { counters: { k: 1 } }, NOW);
    expect(e).toMatchObject({ decision: 'ALLOW', facts: { counters: { k: 1 } }, now: '2025-01-08T12:00:00.000Z' });
  });
});

describe('counters', () => {
  const s = snap(
    doc('lim', [
      { name: 'rate', match: { tool: 'pay' }, limit: { kind: 'rate', max: 2, window: '1h', per: 'agent' }, decision: 'DENY' },
      { name: 'spend', condition: 'currency == "USD"', limit: { kind: 'cost', max: 100, window: '1d', per: 'tenant', field: 'amount' }, decision: 'REQUIRE_APPROVAL' },
      { name: 'other', match: { tool: 'other' }, limit: { kind: 'rate', max: 2, window: '1m' }, decision: 'DENY' },
    ]),
  );
  const r = req({ action: { tool: 'pay' }, context: { amount: 40, currency: 'USD' } });
  it('tells the caller which counters to fetch', () => {
    expect(requiredCounters(s, r).map((c) => [c.key, c.window_sec])).toEqual([
      ['rate:lim/rate:agent=bot:1h', 3600],
      ['cost(amount):lim/spend:tenant:1d', 86400],
    ]);
  });
  it('and what to add once the request goes ahead', () => {
    expect(counterIncrements(s, r, NOW).map((c) => [c.key, c.amount])).toEqual([
      ['rate:lim/rate:agent=bot:1h', 1],
      ['cost(amount):lim/spend:tenant:1d', 40],
    ]);
    expect(counterIncrements(s, req({ action: { tool: 'pay' }, context: { amount: 40, currency: 'EUR' } }), NOW).map((c) => c.key)).toEqual(['rate:lim/rate:agent=bot:1h']);
  });
  it('a cost limit over max decides', () => {
    const e = evaluate(s, r, { counters: { 'rate:lim/rate:agent=bot:1h': 0, 'cost(amount):lim/spend:tenant:1d': 61 } }, NOW);
    expect(e).toMatchObject({ decision: 'REQUIRE_APPROVAL', matched_rule: 'spend' });
  });
});

describe('tool catalog', () => {
  const openapi = {
    openapi: '3.1.0',
    paths: {
      '/invoices': { get: { operationId: 'listInvoices' }, post: { operationId: 'createInvoice' } },
      '/invoices/{id}': { delete: { operationId: 'deleteInvoice' }, patch: {}, parameters: [] },
    },
  };
  it('tags OpenAPI operations by method', () => {
    const c = catalogFromOpenApi('billing', openapi);
    expect(c.ok && c.catalog.entries.map((e) => [e.operation, e.risk_tags])).toEqual([
      ['listInvoices', ['read']],
      ['createInvoice', ['write']],
      ['deleteInvoice', ['write', 'destructive']],
      ['PATCH /invoices/{id}', ['write']],
    ]);
  });
  it('tags MCP tools by annotations (not read-only means destructive unless it says otherwise)', () => {
    const c = catalogFromMcp({
      tools: [
        { name: 'search', annotations: { readOnlyHint: true } },
        { name: 'comment', annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: true } },
        { name: 'drop_table' },
      ],
    }, { server: 'db' });
    expect(c.ok && c.catalog.entries.map((e) => [e.tool, e.operation, e.risk_tags])).toEqual([
      ['db', 'search', ['read']],
      ['db', 'comment', ['write', 'external']],
      ['db', 'drop_table', ['write', 'destructive']],
    ]);
  });
  it('enriches a request so rules on risk tags apply without the agent saying so', () => {
    const c = catalogFromOpenApi('billing', openapi);
    if (!c.ok) throw new Error(c.error);
    const s = snap(doc('p', [{ name: 'no-destroy', match: { risk_tags: ['destructive'] }, decision: 'DENY' }, { name: 'ok', match: { tool: 'billing' }, decision: 'ALLOW' }]));
    const plain = req({ action: { tool: 'billing', operation: 'deleteInvoice' }, context: { risk_tags: ['pii'] } });
    const enriched = enrichRequest(c.catalog, plain);
    expect(enriched.context['risk_tags']).toEqual(['pii', 'write', 'destructive']);
    expect(plain.context['risk_tags']).toEqual(['pii']);
    expect(evaluate(s, plain, {}, NOW).decision).toBe('ALLOW');
    expect(evaluate(s, enriched, {}, NOW)).toMatchObject({ decision: 'DENY', matched_rule: 'no-destroy' });
  });
  it('refuses things that are not catalogs', () => {
    expect(catalogFromOpenApi('x', { nope: 1 }).ok).toBe(false);
    expect(catalogFromMcp({ tools: [{}] }).ok).toBe(false);
  });
});

describe('simulate', () => {
  const active = snap(doc('refunds', [{ name: 'old', match: { tool: 'payment_tool' }, decision: 'DENY' }]));
  it('evaluates against the active set', () => {
    const r = simulate({ body: { request: { agent: { id: 'a' }, action: { tool: 'payment_tool', operation: 'Refund' } } }, active, now: NOW });
    expect(r.ok && r.result).toMatchObject({ decision: 'DENY', matched_rule: 'old', status: 'final', snapshot_hash: active.hash });
  });
  it('a draft replaces the active version of the same policy, and shows its interpretation', () => {
    const draft = doc('refunds', [{ text: 'Require manager approval for refunds over $500' }]);
    const r = simulate({ body: { request: { agent: { id: 'a' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 900 } }, policy: draft, at: '2025-02-01T00:00:00Z' }, active, now: NOW });
    expect(r.ok && r.result).toMatchObject({ decision: 'REQUIRE_APPROVAL', status: 'pending_approval', now: '2025-02-01T00:00:00.000Z', approval: { approvers: ['manager'] } });
    expect(r.ok && r.result.interpreted?.[0]?.interpreted).toMatchObject({ condition: 'amount > 500' });
    expect(r.ok && r.result.snapshot_hash).not.toBe(active.hash);
  });
  it('reports bad bodies and bad drafts precisely', () => {
    expect(simulate({ body: { request: { action: {} } }, active, now: NOW })).toMatchObject({ ok: false, errors: [{ path: 'request.agent' }, { path: 'request.action.tool' }] });
    expect(simulate({ body: { job: {}, request: {} }, active, now: NOW }).ok).toBe(false);
    expect(simulate({ body: { job: { topic: 't' }, policy: doc('x', [{ name: 'a', decision: 'NOPE' }]) }, active, now: NOW })).toMatchObject({ ok: false, errors: [{ path: 'policy.rules[0].decision' }] });
  });
});
