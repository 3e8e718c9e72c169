import type { Decision } from '../../schemas/decision-kind.ts';
import type { Constraints } from '../../schemas/constraints.ts';
import type { ModelLists, PolicyScope, Weekday } from '../../schemas/policy.ts';

/**
 * The compiled effective set. Plain JSON on purpose: it is stored inside PolicyActivated events and
 * re-evaluated by the auditor's replay years later, so everything evaluation needs is in here, normalised
 * (lists are lists, defaults are filled, durations are also given in seconds). Compiled CEL programs and
 * indexes are derived from it on first use and kept off to the side (see runtime.ts).
 */
export const SNAPSHOT_FORMAT = 'countersign.policy-snapshot/1';

export type CompiledMatch = {
  tool?: string[];
  operation?: string[];
  topic?: string[];
  capability?: string[];
  environment?: string[];
  risk_tags?: string[];
  agent?: string[];
  model_provider?: string[];
  model?: string[];
  time?: { days?: Weekday[]; after?: string; before?: string; timezone: string };
};

export type CompiledLimit = {
  kind: 'rate' | 'cost';
  max: number;
  window: string;
  window_sec: number;
  per: 'agent' | 'tenant';
  field?: string;
};

export type CompiledApproval = {
  approvers: string[];
  quorum: number;
  timeout: string;
  timeout_sec: number;
  escalate_to?: string[];
  escalate_after?: string;
  escalate_after_sec?: number;
  on_timeout: 'DENY' | 'ALLOW';
  /**
   * An escalation ladder, only when the document wrote `levels` (then approvers, quorum and timeout above are
   * level 1's). Absent, the single-level form above is the whole of it, as it always was.
   */
  levels?: CompiledApprovalLevel[];
  /** Only when the rule says: false forbids approving changed arguments. */
  allow_edits?: boolean;
  /** The rule named no timeout (level 1's, with levels): the tenant's approval_timeout replaces it at run start. */
  timeout_defaulted?: true;
};

export type CompiledApprovalLevel = { approvers: string[]; quorum: number; timeout: string; timeout_sec: number; timeout_defaulted?: true };

export type CompiledRule = {
  name: string;
  on: 'request' | 'outcome';
  match: CompiledMatch;
  condition?: string;
  limit?: CompiledLimit;
  decision: Decision;
  reason: string;
  constraints: Constraints;
  approval?: CompiledApproval;
  /** The natural-language sentence this rule was compiled from, when it was one. */
  text?: string;
  /**
   * A requirement (seed 003's deterministic rule): the expression every request the policy applies to must
   * satisfy. The rule fires (its decision, DENY or the policy's on_fail) when the expression does not hold;
   * when every requirement of a policy holds, that policy ALLOWs the request (rule `requirements`).
   */
  requirement?: string;
  /** "Flag as high-risk if …": the risk tag the sentence flags a request with (its reason names it too). */
  flag?: string;
  /**
   * A judgment rule: a sentence no grammar can decide, enforced by people (the rule is a REQUIRE_APPROVAL whose
   * approvers read `text` as their checklist) or by the tenant's evaluator, whose `fail` decides `effect`.
   */
  judgment?: CompiledJudgment;
};

export type CompiledJudgment = { effect: 'DENY' | 'REQUIRE_APPROVAL' };

export type CompiledToolLists = { allowed: string[]; denied: string[]; require_approval: string[]; approval: CompiledApproval };

export type PolicyLevel = PolicyScope['level'] | 'builtin';

export type CompiledPolicy = {
  policy_id: string;
  version: number;
  level: PolicyLevel;
  /** For level agent: the agent the policy governs. */
  agent?: string;
  /** Agents bound to this policy by the caller (POST /v1/agents/{id}/binding); absent: no binding filter. */
  bound_agents?: string[];
  default_decision?: Decision;
  models?: Required<ModelLists>;
  tools?: CompiledToolLists;
  /** Override settings of DENYs this policy decides, each only when the document gives it. */
  override?: { groups?: string[]; timeout_sec?: number; window_sec?: number };
  rules: CompiledRule[];
};

export type SnapshotBody = {
  format: typeof SNAPSHOT_FORMAT;
  default_decision: Decision;
  policies: CompiledPolicy[];
};

export type Snapshot = SnapshotBody & { hash: `sha256:${string}` };
