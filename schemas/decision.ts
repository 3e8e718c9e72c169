import { z } from 'zod';
import { Decision } from './decision-kind.ts';
import { Constraints } from './constraints.ts';
import { PolicyRule } from './policy.ts';

// Decision and Constraints live in their own files so schemas/policy.ts can use them without an import cycle.
export { DECISIONS, Decision } from './decision-kind.ts';
export { Constraints } from './constraints.ts';

const Name = z.string().min(1).max(200);

/** An agent id: never `/`, which separates the parts of stream ids (services/events/stream-ids.ts). */
export const AgentId = Name.regex(/^[A-Za-z0-9._:@-]+$/, 'agent id may contain letters, digits and . _ : @ -');

/** The agent of a decision as recorded: always the agent the key decided as. */
export const AgentRef = z.strictObject({
  id: AgentId.describe('The agent asking: the agent id of the key, or one it may act for (acts_for).'),
});

/** The agent as a request may name it: left out, it is the key's own agent id. */
export const AgentRefInput = z.strictObject({
  id: AgentId.optional().describe("The agent asking. Optional: the key's own agent id when left out; any other id is refused (403) unless the key's principal may act for it (acts_for)."),
});

export const Action = z.strictObject({
  tool: Name.describe('Tool the agent wants to call, e.g. payment_tool.'),
  operation: Name.optional().describe('Operation of the tool, e.g. Refund.'),
  topic: Name.optional().describe('Job topic, e.g. job.payments.refund.'),
  capability: Name.optional().describe('Capability, e.g. payments.refund.'),
  args: z.record(z.string(), z.unknown()).optional().describe('Tool arguments; only their digest is kept in workflow history.'),
});

/** Context is open by design: its fields become CEL variables (`amount`, `vendor_status`, ...). */
export const RequestContext = z
  .looseObject({
    environment: Name.optional(),
    risk_tags: z.array(Name).max(64).optional(),
  })
  .describe('Facts about the call; every field is a top-level CEL variable.');

export const ModelRef = z.strictObject({
  provider: Name.optional(),
  model: Name.optional(),
});

export const DecisionRequest = z.strictObject({
  agent: AgentRef,
  action: Action,
  context: RequestContext.default({}),
  model: ModelRef.optional(),
  policy_rules: z
    .array(PolicyRule)
    .max(64)
    .default([])
    .describe('Per-call rules in the policy rule shape; they can tighten the decision, never loosen it.'),
  callback_url: z
    .url({ protocol: /^https?$/, error: 'callback_url must be an http(s) URL' })
    .max(2000)
    .optional()
    .describe('Called (POST, signed with the receipt key) when the decision becomes final.'),
  idempotency_key: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[\x21-\x7e]+$/, 'idempotency_key must be printable ASCII without spaces')
    .optional()
    .describe('Retrying with the same key returns the same decision, never a second run.'),
});
export type DecisionRequest = z.infer<typeof DecisionRequest>;

/**
 * A decision request as a caller sends it: `agent` (or its id) may be left out. The API binds it to the key
 * (services/identity/agent-binding.ts) and everything after works on the resolved DecisionRequest.
 */
export const DecisionRequestBody = DecisionRequest.extend({ agent: AgentRefInput.default({}) });
export type DecisionRequestBody = z.infer<typeof DecisionRequestBody>;
export type DecisionRequestInput = z.input<typeof DecisionRequestBody>;

export const MatchedRule = z.strictObject({
  policy_id: z.string(),
  version: z.number().int().nonnegative(),
  rule: z.string(),
  decision: Decision,
  scope: z.literal('platform').optional().describe('Present when the rule is a platform policy\'s (it applies to every tenant; no tenant can change it).'),
});
export type MatchedRule = z.infer<typeof MatchedRule>;

/**
 * The deciding rule's approval settings, as compiled (services/policy/lower-rule.ts normaliseApproval): who
 * approves, how many, for how long, whom to escalate to and after how long, and the fallback at the deadline.
 */
const TimeoutDefaulted = z.literal(true).optional().describe("The rule named no timeout: this one is the tenant's approval_timeout setting when the run started, else the built-in 1h.");

export const EvaluationApproval = z.strictObject({
  approvers: z.array(z.string()),
  quorum: z.number().int().positive(),
  timeout: z.string(),
  timeout_sec: z.number().int().nonnegative(),
  escalate_to: z.array(z.string()).optional(),
  escalate_after: z.string().optional(),
  escalate_after_sec: z.number().int().nonnegative().optional(),
  on_timeout: z.enum(['DENY', 'ALLOW']),
  levels: z.array(z.strictObject({ approvers: z.array(z.string()), quorum: z.number().int().positive(), timeout: z.string(), timeout_sec: z.number().int().positive(), timeout_defaulted: TimeoutDefaulted }))
    .optional().describe('An escalation ladder (the policy wrote levels): each level in turn, then on_timeout.'),
  allow_edits: z.boolean().optional().describe('false when the rule forbids approving changed arguments; absent means allowed.'),
  timeout_defaulted: TimeoutDefaulted,
});
export type EvaluationApproval = z.infer<typeof EvaluationApproval>;

/** A judgment rule that applied to a request: its sentence is the approvers' checklist. */
export const JudgmentItem = z.strictObject({
  policy_id: z.string(),
  version: z.number().int().nonnegative(),
  rule: z.string(),
  text: z.string().describe('The sentence as written in the policy; untrusted text for every channel that shows it.'),
  effect: z.enum(['DENY', 'REQUIRE_APPROVAL']).describe("What a fail verdict of the tenant's evaluator decides."),
});
export type JudgmentItem = z.infer<typeof JudgmentItem>;

/**
 * The judgment rules of a REQUIRE_APPROVAL, and what the evaluation decides when every one of them passes
 * (the tenant's evaluator said pass): the other rules' decision, or the tenant default when only they matched.
 */
export const EvaluationJudgment = z.strictObject({
  checklist: z.array(JudgmentItem).min(1),
  if_passed: z.strictObject({
    decision: Decision,
    reason: z.string(),
    matched_rule: z.string().nullable(),
    constraints: Constraints,
    approval: z.lazy(() => EvaluationApproval).optional(),
  }),
});
export type EvaluationJudgment = z.infer<typeof EvaluationJudgment>;

/** What the pure evaluator returns: everything a replay needs to re-derive the decision. */
export const Evaluation = z.strictObject({
  decision: Decision,
  reason: z.string(),
  matched_rule: z.string().nullable(),
  matched_rules: z.array(MatchedRule),
  constraints: Constraints,
  snapshot_hash: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  facts: z.record(z.string(), z.unknown()),
  now: z.iso.datetime({ offset: true }),
  approval: EvaluationApproval.optional(),
  requirements: z.array(z.strictObject({ policy_id: z.string(), version: z.number().int().nonnegative(), rule: z.string(), approval: EvaluationApproval }))
    .optional().describe('Present when more than one matched rule requires approval: every one of them, in evaluation order; each must be satisfied.'),
  judgment: EvaluationJudgment.optional().describe('Present when judgment rules applied to a REQUIRE_APPROVAL: their checklist.'),
});
export type Evaluation = z.infer<typeof Evaluation>;

export const DecisionStatus = z.enum(['final', 'pending_approval']);

/** Why a result is what it is, in one word a program can branch on (seed 000's SDK: `result.reason_code`). */
export const REASON_CODES = [
  'allowed', 'allowed_with_constraints', 'policy_violation', 'default_decision', 'approval_required', 'approved',
  'approval_rejected', 'approval_expired', 'override_granted', 'override_denied',
] as const;
export const ReasonCode = z.enum(REASON_CODES);
export type ReasonCode = z.infer<typeof ReasonCode>;

/** One requirement of an approval round, where it stands (services/decisions/approval-requirements.ts). */
export const ApprovalRequirementStatus = z.strictObject({
  id: z.number().int().positive(),
  policy_id: z.string(),
  version: z.number().int().nonnegative(),
  rule: z.string(),
  status: z.enum(['open', 'approved', 'waived', 'expired']).describe('waived: its last level ended unanswered and its fallback is ALLOW.'),
  level: z.number().int().nonnegative().describe('The level it is at (0-based) of levels.'),
  levels: z.number().int().positive(),
  groups: z.array(z.string()).describe('Who may answer for it now: its levels\' groups so far.'),
  quorum: z.number().int().positive(),
  approvals: z.number().int().nonnegative(),
  deadline: z.string(),
  on_timeout: z.enum(['DENY', 'ALLOW']),
});

export const DecisionResult = z.strictObject({
  decision_id: z.string(),
  decision: Decision,
  status: DecisionStatus,
  reason: z.string(),
  matched_rule: z.string().nullable(),
  matched_rules: z.array(MatchedRule),
  constraints: Constraints,
  snapshot_hash: z.string(),
  reason_code: ReasonCode.optional().describe(
    'allowed | allowed_with_constraints | policy_violation (a rule or list denied) | default_decision (nothing matched) | approval_required (pending) | approved | approval_rejected | approval_expired | override_granted | override_denied.',
  ),
  policy_id: z.string().nullable().optional().describe('The policy whose rule decided (the first matched rule with the deciding name); null when the tenant default decided.'),
  approval_requirements: z.array(ApprovalRequirementStatus).optional()
    .describe('When several rules require approval, or one declares an escalation ladder: each requirement of the approval round (every one must approve) and where it stands.'),
  checklist: z.array(JudgmentItem).optional().describe('The judgment rules that applied to the request: what its approvers check (present only when there are any).'),
  edited_args: z
    .record(z.string(), z.unknown())
    .optional()
    .describe('Present when an approver approved changed arguments: the tool must be called with these, not the ones asked for.'),
  edited_args_digest: z.string().optional().describe('sha256 over the canonical JSON of edited_args: the arguments the approval is bound to.'),
  trace_id: z.string().optional().describe('W3C trace id of the request that asked for the decision (recorded in DecisionRequested): its spans in the tracing backend. Absent when there was no trace.'),
});
export type DecisionResult = z.infer<typeof DecisionResult>;
