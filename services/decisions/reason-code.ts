import type { Decision, MatchedRule, ReasonCode } from '../../schemas/decision.ts';

/** The run facts a reason code is read from (pure: workflows, the API and replay share it). */
export type ReasonFacts = {
  decision: Decision | null;
  status: 'requested' | 'pending_approval' | 'final';
  matched_rule: string | null;
  matched_rules: MatchedRule[];
  /** How the run became final (DecisionFinalized.via), null while it is not. */
  finalized_via: string | null;
};

const BY_VIA: Record<string, ReasonCode> = {
  approval: 'approved',
  rejection: 'approval_rejected',
  expiry: 'approval_expired',
  override: 'override_granted',
  override_denied: 'override_denied',
};

/** `reason_code` and `policy_id` of a decision result: what decided it, in words a program can branch on. */
export function reasonFields(f: ReasonFacts): { reason_code: ReasonCode; policy_id: string | null } {
  const deciding = f.matched_rule === null ? undefined : f.matched_rules.find((m) => m.rule === f.matched_rule);
  const policy_id = deciding?.policy_id ?? null;
  if (f.status !== 'final') return { reason_code: 'approval_required', policy_id };
  const via = f.finalized_via === null ? undefined : BY_VIA[f.finalized_via];
  if (via !== undefined) return { reason_code: via, policy_id };
  if (f.matched_rule === null) return { reason_code: f.decision === 'ALLOW' || f.decision === 'ALLOW_WITH_CONSTRAINTS' ? 'allowed' : 'default_decision', policy_id };
  switch (f.decision) {
    case 'ALLOW':
      return { reason_code: 'allowed', policy_id };
    case 'ALLOW_WITH_CONSTRAINTS':
      return { reason_code: 'allowed_with_constraints', policy_id };
    case 'REQUIRE_APPROVAL':
      return { reason_code: 'approval_required', policy_id };
    default:
      return { reason_code: 'policy_violation', policy_id };
  }
}
