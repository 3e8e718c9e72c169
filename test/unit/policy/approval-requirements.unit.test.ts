import { describe, expect, it } from 'vitest';
import { DecisionRequest, Evaluation } from '../../../schemas/decision.ts';
import { compile, evaluate, parsePolicyText, type Snapshot } from '../../../services/policy/index.ts';

const NOW = new Date('2025-01-08T12:00:00Z');
const doc = (id: string, rules: unknown[], extra: Record<string, unknown> = {}) => ({ apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id }, rules, ...extra });
const req = (r: Record<string, unknown>) => DecisionRequest.parse({ agent: { id: 'bot' }, ...r });
function snap(docs: unknown[], circuitBreakers = true): Snapshot {
  const r = compile(docs.map((document, i) => ({ document, version: i + 1 })), { circuitBreakers });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.snapshot;
}
const refund = req({ action: { tool: 'payment_tool', operation: 'Refund' }, context: { environment: 'prod', amount: 900 } });

describe('every matched rule that requires approval is a requirement', () => {
  it('a platform rule asking security and a tenant rule asking finance: both, in evaluation order', () => {
    const platform = { ...doc('platform', [{ name: 'security-review', match: { environment: 'prod' }, decision: 'REQUIRE_APPROVAL', approval: { approvers: ['security'] } }]), scope: { level: 'platform' } };
    const tenant = doc('refunds', [{ name: 'finance-review', match: { tool: 'payment_tool' }, condition: 'amount > 500', decision: 'REQUIRE_APPROVAL', approval: { approvers: ['finance'], quorum: 2 } }]);
    const e = evaluate(snap([platform, tenant]), refund, {}, NOW);
    expect(Evaluation.parse(e)).toEqual(e);
    expect(e.decision).toBe('REQUIRE_APPROVAL');
    expect(e.approval?.approvers).toEqual(['security']);
    expect(e.requirements?.map((r) => [r.policy_id, r.rule, r.approval.approvers, r.approval.quorum])).toEqual([
      ['platform', 'security-review', ['security'], 1], ['refunds', 'finance-review', ['finance'], 2],
    ]);
  });

  it('the built-in circuit breaker asking approvers, beside a tenant rule that does not name the tool', () => {
    const tenant = doc('prod', [{ name: 'prod-writes', match: { environment: 'prod' }, decision: 'REQUIRE_APPROVAL', approval: { approvers: ['sre'] } }]);
    const e = evaluate(snap([tenant]), refund, {}, NOW);
    expect(e.requirements?.map((r) => [r.policy_id, r.approval.approvers])).toEqual([['prod', ['sre']], ['builtin.circuit-breakers', ['approvers']]]);
  });

  it('one requirement alone is recorded as it always was (approval, no requirements)', () => {
    const tenant = doc('refunds', [{ name: 'finance-review', match: { tool: 'payment_tool' }, decision: 'REQUIRE_APPROVAL', approval: { approvers: ['finance'] } }]);
    const e = evaluate(snap([tenant]), refund, {}, NOW);
    expect(e.requirements).toBeUndefined();
    expect(e.approval).toEqual({ approvers: ['finance'], quorum: 1, timeout: '1h', timeout_sec: 3600, on_timeout: 'DENY', timeout_defaulted: true });
  });

  it('per-call rules never add a requirement, and a DENY carries none', () => {
    const tenant = doc('refunds', [{ name: 'finance-review', match: { tool: 'payment_tool' }, decision: 'REQUIRE_APPROVAL', approval: { approvers: ['finance'] } }]);
    const withPerCall = { ...refund, policy_rules: [{ name: 'mine', match: { tool: 'payment_tool' }, decision: 'REQUIRE_APPROVAL' }] } as DecisionRequest;
    expect(evaluate(snap([tenant], false), withPerCall, {}, NOW).requirements).toBeUndefined();
    const deny = doc('no', [{ name: 'no', match: { tool: 'payment_tool' }, decision: 'DENY' }]);
    expect(evaluate(snap([tenant, deny]), refund, {}, NOW).requirements).toBeUndefined();
  });
});

describe('escalation ladders in a policy', () => {
  const text = (approval: string) => `apiVersion: countersign/v1
kind: Policy
metadata: { id: deploys }
rules:
  - name: prod-deploys
    match: { tool: deploy_tool }
    decision: REQUIRE_APPROVAL
    approval: ${approval}
`;

  it('compiles each level with its groups, quorum and timeout; the first level also fills the single-level fields', () => {
    const r = parsePolicyText(text('{ levels: [{ approvers: [sre], timeout: 30s }, { approvers: [sre-leads], quorum: 2, timeout: 1m }, { approvers: [cto] }], on_timeout: DENY }'), 'p.yaml');
    expect(r.ok).toBe(true);
    const e = evaluate(snap([r.ok ? r.document : null]), req({ action: { tool: 'deploy_tool' } }), {}, NOW);
    expect(e.approval).toEqual({
      approvers: ['sre'], quorum: 1, timeout: '30s', timeout_sec: 30, on_timeout: 'DENY',
      levels: [
        { approvers: ['sre'], quorum: 1, timeout: '30s', timeout_sec: 30 },
        { approvers: ['sre-leads'], quorum: 2, timeout: '1m', timeout_sec: 60 },
        { approvers: ['cto'], quorum: 1, timeout: '1h', timeout_sec: 3600, timeout_defaulted: true },
      ],
    });
  });

  it('refuses the single-level fields beside levels, and a block with neither, each at its line', () => {
    for (const [approval, path] of [
      ['{ levels: [{ approvers: [sre] }], approvers: [sre] }', 'approvers'],
      ['{ levels: [{ approvers: [sre] }], escalate_to: [leads] }', 'escalate_to'],
      ['{ levels: [{ approvers: [sre] }], quorum: 2 }', 'quorum'],
      ['{ on_timeout: ALLOW }', 'approvers'],
      ['{ levels: [] }', 'levels'],
      ['{ levels: [{ quorum: 2 }] }', 'approvers'],
    ] as const) {
      const r = parsePolicyText(text(approval), 'p.yaml');
      expect(r.ok, approval).toBe(false);
      if (!r.ok) expect(r.errors.map((x) => `${x.line}:${x.path}`).join(' '), approval).toMatch(new RegExp(`^8:.*${path}`));
    }
  });

  it('the single-level syntax compiles exactly as before (no levels)', () => {
    const r = parsePolicyText(text('{ approvers: [sre], quorum: 2, timeout: 30m, escalate_to: [leads], escalate_after: 10m }'), 'p.yaml');
    const e = evaluate(snap([r.ok ? r.document : null]), req({ action: { tool: 'deploy_tool' } }), {}, NOW);
    expect(e.approval).toEqual({ approvers: ['sre'], quorum: 2, timeout: '30m', timeout_sec: 1800, escalate_to: ['leads'], escalate_after: '10m', escalate_after_sec: 600, on_timeout: 'DENY' });
  });
});
