import { describe, expect, it } from 'vitest';
import { DecisionRequest } from '../../../schemas/decision.ts';
import { durationText, settingSeconds } from '../../../schemas/duration.ts';
import { approvalRoute } from '../../../services/decisions/approval-requirements.ts';
import { withApprovalTimeout } from '../../../services/decisions/approval-timeout.ts';
import { approvalTimeout, overrideWindows } from '../../../services/decisions/override-settings.ts';
import { compilePolicyVersion, isVersionHash } from '../../../services/lifecycle/policy-version.ts';
import { compile, evaluate } from '../../../services/policy/index.ts';
import { sha256Digest } from '../../../services/receipts/canonical.ts';

// The tenant's approval_timeout: it stands in for the built-in 1h wherever a rule wrote no timeout, never
// for a timeout a rule wrote.

const NOW = new Date('2026-12-01T10:00:00.000Z');
const doc = (id: string, rules: unknown[]) => ({ apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id }, rules });
const snap = (docs: unknown[], circuitBreakers = false, defaultDecision: 'DENY' | 'REQUIRE_APPROVAL' = 'DENY') => {
  const r = compile(docs.map((document) => ({ document, version: 1 })), { circuitBreakers, defaultDecision });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.snapshot;
};
const req = (tool: string, environment = 'prod'): DecisionRequest => DecisionRequest.parse({ agent: { id: 'a' }, action: { tool }, context: { environment } });
const rule = (name: string, tool: string, approval: unknown) => ({ name, match: { tool }, decision: 'REQUIRE_APPROVAL', approval });

describe('compiling marks the timeouts a rule left to the default', () => {
  it('given a rule without a timeout, when compiled, then its approval is marked; a written one is not', () => {
    const s = snap([doc('p', [rule('plain', 't1', { approvers: ['sre'] }), rule('written', 't2', { approvers: ['sre'], timeout: '1h' })])]);
    const [plain, written] = s.policies[0]!.rules;
    expect(plain!.approval).toMatchObject({ timeout: '1h', timeout_sec: 3600, timeout_defaulted: true });
    expect(written!.approval).toEqual({ approvers: ['sre'], quorum: 1, timeout: '1h', timeout_sec: 3600, on_timeout: 'DENY' });
  });

  it('given a ladder, each level that names no timeout is marked, and the block mirrors level 1', () => {
    const s = snap([doc('p', [rule('ladder', 't', { levels: [{ approvers: ['sre'], timeout: '30m' }, { approvers: ['leads'] }] })])]);
    const a = s.policies[0]!.rules[0]!.approval!;
    expect(a.timeout_defaulted).toBeUndefined();
    expect(a.levels!.map((l) => l.timeout_defaulted ?? false)).toEqual([false, true]);
    const b = snap([doc('p', [rule('ladder', 't', { levels: [{ approvers: ['sre'] }, { approvers: ['leads'], timeout: '2h' }] })])]).policies[0]!.rules[0]!.approval!;
    expect(b.timeout_defaulted).toBe(true);
    expect(b.levels!.map((l) => l.timeout_defaulted ?? false)).toEqual([true, false]);
  });

  it('given an activation recorded before the marks, when its document is compiled again, then it still matches its hash', () => {
    const compilesToHash = (document: unknown, version: number, hash: string) => {
      const c = compilePolicyVersion(document, version);
      return c.ok && isVersionHash(c, hash);
    };
    const document = doc('p', [rule('plain', 't1', { approvers: ['sre'] })]);
    const now = compilePolicyVersion(document, 3);
    if (!now.ok) throw new Error('does not compile');
    const unmarked = JSON.parse(JSON.stringify(now.policy, (k, v: unknown) => (k === 'timeout_defaulted' ? undefined : v))) as unknown;
    expect(compilesToHash(document, 3, now.hash)).toBe(true);
    expect(compilesToHash(document, 3, sha256Digest(unmarked))).toBe(true);
    expect(compilesToHash(document, 4, now.hash)).toBe(false);
    expect(compilesToHash(doc('p', [rule('plain', 't1', { approvers: ['finance'] })]), 3, now.hash)).toBe(false);
  });
});

describe('withApprovalTimeout', () => {
  const s = snap([doc('p', [
    rule('plain', 't1', { approvers: ['sre'] }),
    rule('written', 't2', { approvers: ['sre'], timeout: '30m' }),
    rule('escalating', 't3', { approvers: ['sre'], escalate_after: '10m', escalate_to: ['leads'] }),
    rule('ladder', 't4', { levels: [{ approvers: ['sre'], timeout: '30m' }, { approvers: ['leads'] }] }),
  ]), doc('q', [{ name: 'prod', match: { environment: 'prod' }, decision: 'REQUIRE_APPROVAL', approval: { approvers: ['security'], timeout: '4h' } }])]);

  it('given no tenant setting, then the evaluation is returned as it is', () => {
    const e = evaluate(s, req('t1', 'dev'), {}, NOW);
    expect(withApprovalTimeout(e, undefined)).toBe(e);
  });

  it('given a tenant setting, when a rule wrote no timeout, then the setting replaces it (and the mark stays, for the auditor)', () => {
    const e = withApprovalTimeout(evaluate(s, req('t1', 'dev'), {}, NOW), 7200);
    expect(e.approval).toMatchObject({ timeout: '2h', timeout_sec: 7200, timeout_defaulted: true });
    expect(approvalRoute(e, NOW)[0]!.final_deadline).toBe('2026-12-01T12:00:00.000Z');
  });

  it('given a tenant setting, when the rule wrote its timeout, then nothing changes', () => {
    const e = evaluate(s, req('t2', 'dev'), {}, NOW);
    expect(withApprovalTimeout(e, 7200)).toBe(e);
    expect(e.approval?.timeout_sec).toBe(1800);
  });

  it('given escalate_after without a timeout, then the first level keeps escalate_after and the escalated level waits the setting', () => {
    const e = withApprovalTimeout(evaluate(s, req('t3', 'dev'), {}, NOW), 5400);
    expect(approvalRoute(e, NOW)[0]!.levels.map((l) => [l.groups, l.deadline])).toEqual([
      [['sre'], '2026-12-01T10:10:00.000Z'],
      [['leads'], '2026-12-01T11:40:00.000Z'],
    ]);
  });

  it('given a ladder, then only the levels without a timeout take the setting', () => {
    const e = withApprovalTimeout(evaluate(s, req('t4', 'dev'), {}, NOW), 900);
    expect(e.approval!.levels!.map((l) => l.timeout_sec)).toEqual([1800, 900]);
    expect(e.approval!.timeout_sec).toBe(1800);
  });

  it('given a REQUIRE_APPROVAL that no approval block decided (the tenant default, a per-call rule), then the built-in approval waits the setting', () => {
    const byDefault = snap([doc('p', [rule('plain', 't1', { approvers: ['sre'] })])], false, 'REQUIRE_APPROVAL');
    const e = evaluate(byDefault, req('other', 'dev'), {}, NOW);
    expect([e.decision, e.matched_rule, e.approval]).toEqual(['REQUIRE_APPROVAL', null, undefined]);
    expect(withApprovalTimeout(e, 600).approval).toEqual({ approvers: ['approvers'], quorum: 1, timeout: '10m', timeout_sec: 600, on_timeout: 'DENY', timeout_defaulted: true });
    expect(approvalRoute(withApprovalTimeout(e, 600), NOW)[0]!.levels.map((l) => [l.groups, l.deadline])).toEqual([[['approvers'], '2026-12-01T10:10:00.000Z']]);
    const perCall = DecisionRequest.parse({ agent: { id: 'a' }, action: { tool: 'other' }, policy_rules: [{ name: 'mine', match: { tool: 'other' }, decision: 'REQUIRE_APPROVAL' }] });
    const p = evaluate(snap([doc('a', [{ name: 'ok', match: { tool: 'other' }, decision: 'ALLOW' }])]), perCall, {}, NOW);
    expect([p.decision, p.approval]).toEqual(['REQUIRE_APPROVAL', undefined]);
    expect(withApprovalTimeout(p, 600).approval?.timeout_sec).toBe(600);
    expect(withApprovalTimeout(p, undefined)).toBe(p);
  });

  it('given several requirements, then each is treated on its own', () => {
    const e = withApprovalTimeout(evaluate(s, req('t1'), {}, NOW), 600);
    expect(e.requirements?.map((r) => [r.rule, r.approval.timeout_sec])).toEqual([['plain', 600], ['prod', 14_400]]);
  });
});

describe('the setting as a run records it', () => {
  const deployment = { override_sec: 86_400, outcome_sec: 86_400, override_groups: ['admins'], override_timeout_sec: 86_400 };
  const e = evaluate(snap([doc('p', [rule('plain', 't1', { approvers: ['sre'] })])]), req('t1'), {}, NOW);

  it('is absent from the windows when the tenant has none, so runs start exactly as before', () => {
    expect(overrideWindows(deployment, {}, snap([]), e)).toEqual(deployment);
    expect(approvalTimeout(undefined)).toEqual({});
  });

  it('is in seconds when set; a recorded value out of the settings\' bounds falls back to the default', () => {
    expect(overrideWindows(deployment, { approval_timeout: '1h30m' }, snap([]), e)).toEqual({ ...deployment, approval_timeout_sec: 5400 });
    expect(approvalTimeout({ approval_timeout: '31d' })).toEqual({});
    expect(approvalTimeout({ approval_timeout: 'soon' })).toEqual({});
  });

  it('every duration setting recorded out of the bounds falls back to its default, as the approval timeout does', () => {
    const out = { override_timeout: '60d', override_window: '9999d', approval_timeout: '31d' };
    expect(overrideWindows(deployment, out, snap([]), e)).toEqual(deployment);
    expect(overrideWindows(deployment, { override_timeout: '30d', override_window: '1s' }, snap([]), e)).toEqual({ ...deployment, override_timeout_sec: 2_592_000, override_sec: 1 });
  });

  it('durations are written back in the policy grammar, largest units first', () => {
    expect([5400, 90, 7200, 86_400 * 8, 1].map(durationText)).toEqual(['1h30m', '1m30s', '2h', '1w1d', '1s']);
    expect([undefined, '30d', '1s', '0s', '31d'].map(settingSeconds)).toEqual([undefined, 2_592_000, 1, undefined, undefined]);
  });
});
