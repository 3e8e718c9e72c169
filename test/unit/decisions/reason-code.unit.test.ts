import { describe, expect, it } from 'vitest';
import { reasonFields, type ReasonFacts } from '../../../services/decisions/reason-code.ts';

const m = (policy_id: string, rule: string, decision: ReasonFacts['decision']) => ({ policy_id, version: 1, rule, decision: decision! });
const base: ReasonFacts = { decision: 'DENY', status: 'final', matched_rule: 'r', matched_rules: [m('allow-p', 'other', 'ALLOW'), m('p', 'r', 'DENY')], finalized_via: 'policy' };

describe('reason_code and policy_id of a decision result', () => {
  it('a rule that denies: policy_violation, naming its policy', () => expect(reasonFields(base)).toEqual({ reason_code: 'policy_violation', policy_id: 'p' }));
  it('nothing matched and the tenant default denied: default_decision, no policy', () =>
    expect(reasonFields({ ...base, matched_rule: null, matched_rules: [] })).toEqual({ reason_code: 'default_decision', policy_id: null }));
  it('pending: approval_required', () => expect(reasonFields({ ...base, decision: 'REQUIRE_APPROVAL', status: 'pending_approval', finalized_via: null }).reason_code).toBe('approval_required'));
  it('by how the run became final', () => {
    expect(reasonFields({ ...base, finalized_via: 'rejection' }).reason_code).toBe('approval_rejected');
    expect(reasonFields({ ...base, finalized_via: 'expiry' }).reason_code).toBe('approval_expired');
    expect(reasonFields({ ...base, decision: 'ALLOW', finalized_via: 'approval' }).reason_code).toBe('approved');
    expect(reasonFields({ ...base, decision: 'ALLOW', finalized_via: 'override' }).reason_code).toBe('override_granted');
    expect(reasonFields({ ...base, finalized_via: 'override_denied' }).reason_code).toBe('override_denied');
  });
  it('allows', () => {
    expect(reasonFields({ ...base, decision: 'ALLOW', matched_rule: 'other' })).toEqual({ reason_code: 'allowed', policy_id: 'allow-p' });
    expect(reasonFields({ ...base, decision: 'ALLOW_WITH_CONSTRAINTS' }).reason_code).toBe('allowed_with_constraints');
  });
});
