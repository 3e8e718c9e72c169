import { z } from 'zod';
import { DecisionRequest, Evaluation, Decision, Constraints } from './decision.ts';
import { ToolCatalogRegisteredData, ToolCatalogRemovedData } from './tool-catalog.ts';
import { RecordedPlatformSettings, RecordedTenantSettings, Role } from './identity.ts';
import { APPROVAL_CHANNELS } from './approval-channel.ts';

/**
 * The event catalogue. Every event is `{ type, schemaVersion, data }` plus an envelope assigned on append.
 * Old schemaVersions are upcast at read time (services/events/upcast.ts), never rewritten.
 */

export const Sha256 = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex>');

// --- run streams: `run/<decision id>` ---------------------------------------------------------
/** One counter amount a run records when its action goes ahead (rate: 1; cost: the request's field, never negative). */
export const CounterIncrement = z.strictObject({
  key: z.string().min(1).max(1000),
  amount: z.number().finite().min(0, 'a counter increment is never negative').max(1e15, 'a counter increment is at most 1e15'),
});

/**
 * The API's Ed25519 signature over everything a decision workflow was started with that is not already in the
 * run's first two events (services/decisions/start-attestation.ts): the worker checks it before the run's first
 * append, and `audit replay` checks it from the log alone. A workflow started by anyone but the API has none.
 */
export const RunStartData = z.strictObject({
  workflow_id: z.string().min(1),
  counter_increments: z.array(CounterIncrement).max(100),
  windows: z.strictObject({
    override_sec: z.number().int().min(0),
    outcome_sec: z.number().int().min(0),
    override_groups: z.array(z.string().min(1)).max(100),
    override_timeout_sec: z.number().int().positive(),
    remind_before: z.union([z.strictObject({ sec: z.number().positive() }), z.strictObject({ percent: z.number().positive().max(100) })]).nullable().optional(),
    approval_timeout_sec: z.number().int().positive().optional().describe("The tenant's approval_timeout when the run started, if it had one: it replaced every approval timeout the rules left to the default."),
  }),
  callback_url: z.string().max(2000).nullable(),
  judge: z.literal(true).optional().describe("Present when the run asks the tenant's evaluator about its judgment rules before opening a round."),
  issued_at: z.iso.datetime({ offset: true }),
  signature: z.strictObject({ alg: z.literal('Ed25519'), key_id: z.string(), value: z.string() }),
});

/** W3C trace context of the request that asked for a decision: its trace, and the span that asked. */
export const TraceContext = z.strictObject({
  trace_id: z.string().regex(/^(?!0{32})[0-9a-f]{32}$/).describe('W3C trace id (32 lowercase hex digits): find the run\'s spans under it in the tracing backend.'),
  span_id: z.string().regex(/^(?!0{16})[0-9a-f]{16}$/).describe('The span that asked: the API\'s request span, or the caller\'s own when Countersign exports no traces.'),
});
export type TraceContext = z.infer<typeof TraceContext>;

export const DecisionRequestedData = z.strictObject({
  decision_id: z.string(),
  tenant_id: z.string(),
  request: DecisionRequest,
  request_digest: Sha256,
  args_digest: Sha256.nullable().describe('sha256 of action.args; receipts carry this, never the args.'),
  idempotency_key: z.string().nullable(),
  requested_by: z.string().describe('Principal id of the caller.'),
  acting_principal: z.string().optional().describe("Present when the caller asked for an agent other than its own agent id, under its acts_for permission: the caller's principal id."),
  start: RunStartData.optional().describe('The API\'s signature over the run\'s start; a run without one was not started by Countersign.'),
  trace: TraceContext.optional().describe('The trace the decision was asked in (an incoming W3C traceparent, or the API\'s own trace when it exports traces); absent when there was none.'),
});

export const PolicyEvaluatedData = z.strictObject({
  evaluation: Evaluation,
  policies: z.array(z.strictObject({
    policy_id: z.string(), version: z.number().int(), hash: Sha256,
    scope: z.literal('platform').optional().describe('A platform policy (stream platform/policy/<id>), which applies to every tenant.'),
  })),
  default_decision: Decision.optional().describe("The tenant's decision when no rule matches, as it stood; replay needs it."),
});

export const EditedArgs = z.record(z.string(), z.unknown());

export const DecisionFinalizedData = z.strictObject({
  decision: Decision,
  reason: z.string(),
  matched_rule: z.string().nullable(),
  constraints: Constraints,
  via: z.enum(['policy', 'approval', 'rejection', 'expiry', 'override', 'override_denied', 'evaluator']),
  edited_args: EditedArgs.optional().describe('The arguments the approvers approved instead of the ones asked for; the agent gets these.'),
  edited_args_digest: Sha256.optional().describe('sha256 of edited_args: the approval is bound to it.'),
});

/** One judgment rule's verdict from the tenant's evaluator; `error` when it could not be asked or answered nothing usable. */
export const JudgmentVerdict = z.strictObject({
  policy_id: z.string(),
  version: z.number().int().nonnegative(),
  rule: z.string(),
  verdict: z.enum(['pass', 'fail', 'unsure', 'error']),
  reason: z.string().max(2000).describe("The evaluator's reason (untrusted text), or why it gave no usable verdict."),
});
export type JudgmentVerdict = z.infer<typeof JudgmentVerdict>;

/**
 * The tenant evaluator's verdicts on a request's judgment rules, recorded before the decision they lead to:
 * replay re-derives that decision from these, never asking the evaluator again.
 */
export const JudgmentEvaluatedData = z.strictObject({
  verdicts: z.array(JudgmentVerdict).min(1),
  model: z.string().max(200).describe('The model the evaluator was asked with.'),
  at: z.iso.datetime({ offset: true }),
});

// --- approval rounds (REQUIRE_APPROVAL and override requests) ----------------------------------
export const ApprovalChannelName = z.enum(APPROVAL_CHANNELS);
export const RoundKind = z.enum(['approval', 'override']);

/**
 * One requirement of a round: a matched rule's approval, as an escalation ladder (a single-level block is a ladder
 * of one level, or two with escalate_to). Each requirement of a round must be satisfied; a rejection ends them all.
 */
export const RoundRequirement = z.strictObject({
  id: z.number().int().positive().describe('1-based, in evaluation order.'),
  policy_id: z.string(),
  version: z.number().int().nonnegative(),
  rule: z.string(),
  levels: z.array(z.strictObject({
    groups: z.array(z.string()).min(1).describe('Groups added at this level; those of earlier levels may still answer.'),
    quorum: z.number().int().positive().describe('Approvals the requirement needs while at this level.'),
    timeout_sec: z.number().int().positive(),
  })).min(1),
  on_timeout: z.enum(['DENY', 'ALLOW']).describe('After the last level: DENY ends the round; ALLOW waives this requirement.'),
  deadline: z.iso.datetime({ offset: true }).describe('When the first level ends.'),
});
export type RoundRequirement = z.infer<typeof RoundRequirement>;

export const ApprovalRequestedData = z.strictObject({
  round: z.number().int().positive().describe('Round number within the run: 1 for the first, then one per override.'),
  kind: RoundKind,
  groups: z.array(z.string()).min(1).describe('Approver groups whose members may answer.'),
  quorum: z.number().int().positive(),
  deadline: z.iso.datetime({ offset: true }),
  escalate_to: z.array(z.string()),
  level_timeout_sec: z.number().int().positive(),
  on_timeout: z.enum(['DENY', 'ALLOW']),
  requested_by: z.string().describe('Principal that asked (the agent); it may never approve its own request.'),
  args_digest: Sha256.nullable().describe('The exact arguments the approval is bound to.'),
  snapshot_hash: Sha256.describe('The policy snapshot the approval is bound to.'),
  justification: z.string().optional(),
  requirements: z.array(RoundRequirement).min(1).optional()
    .describe('Present when several rules require approval or one declares an escalation ladder: each requirement must be satisfied. Then groups is the union of their first levels\' groups, quorum the sum of their first quorums, deadline the earliest.'),
});

/**
 * An approval of changed arguments: the edited arguments, their digest (what the approval is bound to), and
 * their evaluation against the run's own snapshot with the run's recorded facts and clock, which must be no
 * looser than the run's (services/decisions/approval-edit.ts); replay re-derives it.
 */
export const ApprovalEdit = z.strictObject({
  args: EditedArgs,
  args_digest: Sha256,
  evaluation: Evaluation,
});
export type ApprovalEdit = z.infer<typeof ApprovalEdit>;

export const ApprovalAnswerData = z.strictObject({
  round: z.number().int().positive(),
  approver_id: z.string(),
  channel: ApprovalChannelName,
  comment: z.string().max(4000).optional(),
  at: z.iso.datetime({ offset: true }),
  requirements: z.array(z.number().int().positive()).optional().describe('In a round of requirements: the open requirements this answer counts for (the approver is in one of their groups).'),
  on_behalf_of: z.string().optional().describe('The approver answered as the delegate of this principal (a delegation active at the time).'),
  delegation_id: z.string().optional(),
  edit: ApprovalEdit.optional().describe('Present when the approver approved changed arguments (approvals only).'),
});

export const ApprovalEscalatedData = z.strictObject({
  round: z.number().int().positive(),
  level: z.number().int().positive(),
  groups: z.array(z.string()).min(1),
  deadline: z.iso.datetime({ offset: true }),
  requirements: z.array(z.strictObject({ id: z.number().int().positive(), level: z.number().int().positive(), deadline: z.iso.datetime({ offset: true }) })).min(1).optional()
    .describe('In a round of requirements: those that moved to their next level (0-based index into their levels), with that level\'s deadline.'),
});

export const ApprovalExpiredData = z.strictObject({
  round: z.number().int().positive(),
  fallback: z.enum(['DENY', 'ALLOW']),
  at: z.iso.datetime({ offset: true }),
  requirements: z.array(z.number().int().positive()).min(1).optional()
    .describe('In a round of requirements: those whose last level ended unanswered. The round ends only if one falls back to DENY or none is left open; DecisionFinalized follows when it does.'),
});

export const NotificationData = z.strictObject({
  round: z.number().int().positive(),
  channel: ApprovalChannelName,
  recipient: z.string().describe('Principal id notified.'),
  purpose: z.enum(['request', 'escalation', 'reminder', 'digest', 'result']),
  error: z.string().optional(),
});

export const OverrideRequestedData = z.strictObject({
  round: z.number().int().positive(),
  requested_by: z.string(),
  justification: z.string().min(1).max(4000),
  at: z.iso.datetime({ offset: true }),
});

export const OverrideDecidedData = z.strictObject({
  round: z.number().int().positive(),
  reason: z.string(),
  at: z.iso.datetime({ offset: true }),
});

export const OutcomeReportedData = z.strictObject({
  status: z.enum(['succeeded', 'failed']),
  output_digest: Sha256,
  reported_by: z.string(),
  at: z.iso.datetime({ offset: true }),
});

export const OutputViolationData = z.strictObject({
  policy_id: z.string(),
  rule: z.string(),
  reason: z.string(),
});

export const ReceiptIssuedData = z.strictObject({
  receipt_digest: Sha256.describe('sha256 over the canonical JSON of the receipt rebuilt from the events before this one.'),
  head_version: z.number().int().positive(),
  signature: z.strictObject({ alg: z.literal('Ed25519'), key_id: z.string(), value: z.string() }),
});

// --- policy streams: `policy/<tenant>/<policy id>` ------------------------------------------------
export const PolicyActivatedData = z.strictObject({
  policy_id: z.string(),
  version: z.number().int().positive(),
  scope: z.record(z.string(), z.unknown()),
  document: z.record(z.string(), z.unknown()).describe('The policy document as authored.'),
  snapshot: z.record(z.string(), z.unknown()).describe('The compiled policy; replay re-evaluates with it.'),
  hash: Sha256,
  document_hash: Sha256.optional().describe('SHA-256 over the canonical JSON of document, under the signature: the authored text the frozen snapshot was compiled from.'),
  signature: z.string().optional(),
  signing_key_id: z.string().optional(),
  activated_by: z.string(),
  approved_by: z.string().optional().describe('Four-eyes activation: the second admin who approved it.'),
  review_id: z.string().optional().describe('Four-eyes activation: the review (workflow id) that approved it.'),
});

// --- policy lifecycle (issue 7): drafts, validation, deprecation, rollback, import, bindings ------------
const Doc = z.record(z.string(), z.unknown());
export const PolicyDraftedData = z.strictObject({
  policy_id: z.string(),
  version: z.number().int().positive().describe('The version this draft becomes when activated.'),
  document: Doc,
  drafted_by: z.string(),
  cloned_from: z.number().int().positive().optional().describe('Lineage: the active version this draft was cloned from.'),
});
export const PolicyEditedData = z.strictObject({ policy_id: z.string(), version: z.number().int().positive(), document: Doc, edited_by: z.string() });
export const PolicyValidatedData = z.strictObject({
  policy_id: z.string(),
  version: z.number().int().positive(),
  document_hash: Sha256.describe('sha256 of the canonical draft document that was validated.'),
  report: z.record(z.string(), z.unknown()),
  validated_by: z.string(),
});
/** Set on a change of the active set that went through a four-eyes review: who approved it, and which review. */
const Reviewed = {
  approved_by: z.string().optional().describe('The second admin who approved the change (four-eyes tenants).'),
  review_id: z.string().optional().describe('The review the change went through (four-eyes tenants).'),
};
export const PolicyDeprecatedData = z.strictObject({ policy_id: z.string(), version: z.number().int().positive(), deprecated_by: z.string(), ...Reviewed });
export const PolicyRolledBackData = z.strictObject({
  policy_id: z.string(),
  from_version: z.number().int().positive().nullable(),
  to_version: z.number().int().positive(),
  new_version: z.number().int().positive().describe('The version the re-activated snapshot is recorded as (the chain only moves forward).'),
  rolled_back_by: z.string(),
  ...Reviewed,
});
export const PolicyImportedData = z.strictObject({
  policy_id: z.string(),
  version: z.number().int().positive(),
  document: Doc,
  source: z.record(z.string(), z.unknown()).describe('What the export claimed: its policy version, hash, signature and key id.'),
  signature_verified: z.boolean(),
  imported_by: z.string(),
});
export const PolicyBindingData = z.strictObject({ agent_id: z.string(), policy_id: z.string(), by: z.string(), ...Reviewed });
export const PolicyDeletedData = z.strictObject({ policy_id: z.string(), version: z.number().int().positive(), deleted_by: z.string() });
export const AgentManifestForcedData = z.strictObject({
  agent_id: z.string(),
  manifest: z.record(z.string(), z.unknown()),
  by: z.string(),
  violations: z.array(z.record(z.string(), z.unknown())).optional().describe('What the check found, as it was overridden.'),
});
// Four-eyes activation (issue 7): an approval round on the policy stream, run by workflows/policy-activation-workflow.ts.
/** A change of the active set other than activating the draft; under four-eyes each goes through the same review. */
export const PolicyChange = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('rollback'), to_version: z.number().int().positive() }),
  z.strictObject({ kind: z.literal('deprecate'), version: z.number().int().positive() }),
  z.strictObject({ kind: z.literal('bind'), agent_id: z.string().min(1) }),
  z.strictObject({ kind: z.literal('unbind'), agent_id: z.string().min(1) }),
]);
export type PolicyChange = z.infer<typeof PolicyChange>;
export const PolicyActivationRequestedData = z.strictObject({
  policy_id: z.string(),
  version: z.number().int().positive(),
  review_id: z.string().describe('The review workflow id.'),
  document_hash: Sha256.describe('The exact draft document the approval is bound to.'),
  requested_by: z.string(),
  authors: z.array(z.string()).describe('Who wrote the change (drafted, edited, imported, asked to activate): none of them may approve it.'),
  deadline: z.iso.datetime({ offset: true }),
  expected_loosening: z.array(z.string()).optional().describe('Rules whose loosening the requester declared expected.'),
  change: PolicyChange.optional().describe('What the review stands for when it is not the activation of the draft (then document_hash is the hash of the change as planned).'),
});
export const PolicyActivationAnswerData = z.strictObject({
  policy_id: z.string(),
  version: z.number().int().positive(),
  review_id: z.string(),
  by: z.string(),
  comment: z.string().max(4000).optional(),
  channel: ApprovalChannelName.optional().describe('Where the answer was given (api, cli, dashboard, slack, email); absent in answers recorded before reviews recorded it.'),
  at: z.iso.datetime({ offset: true }),
});
export const PolicyActivationExpiredData = z.strictObject({ policy_id: z.string(), version: z.number().int().positive(), review_id: z.string(), at: z.iso.datetime({ offset: true }) });

// --- tenant streams: `tenant/<tenant id>`: every change to who may do what ------------------------------
// `by` is the principal that made the change, or `system` for the bootstrap at first start.
export const PrincipalAccess = z.strictObject({
  name: z.string(),
  roles: z.array(Role),
  groups: z.array(z.string()),
  disabled: z.boolean(),
  agent_id: z.string().nullable(),
  acts_for: z.array(z.string()),
});
export type PrincipalAccess = z.infer<typeof PrincipalAccess>;
export const PrincipalCreatedData = z.strictObject({
  principal_id: z.string(),
  kind: z.enum(['person', 'agent']),
  platform_admin: z.boolean(),
  access: PrincipalAccess,
  by: z.string(),
});
export const PrincipalChangedData = z.strictObject({
  principal_id: z.string(),
  before: PrincipalAccess,
  after: PrincipalAccess,
  by: z.string(),
});
/** A platform admin no longer one (on its home tenant's stream): it stays a member there, with its roles. */
export const PlatformAdminRevokedData = z.strictObject({ principal_id: z.string(), by: z.string() });
export const ApiKeyCreatedData = z.strictObject({
  key_id: z.string(),
  prefix: z.string().describe('The public part of the key; never the secret.'),
  principal_id: z.string(),
  name: z.string(),
  expires_at: z.iso.datetime({ offset: true }).nullable(),
  by: z.string(),
});
export const ApiKeyRevokedData = z.strictObject({ key_id: z.string(), prefix: z.string(), principal_id: z.string(), by: z.string() });
/** An approver away: another member of the same approver group answers for them between starts_at and ends_at. */
export const DelegationGrantedData = z.strictObject({
  delegation_id: z.string(),
  from: z.string().describe('The approver who is away.'),
  to: z.string().describe('The member of the same group who answers for them.'),
  group: z.string(),
  starts_at: z.iso.datetime({ offset: true }),
  ends_at: z.iso.datetime({ offset: true }),
  by: z.string(),
});
export const DelegationRevokedData = z.strictObject({ delegation_id: z.string(), from: z.string(), to: z.string(), group: z.string(), by: z.string() });
export const TenantConfig = z.strictObject({ name: z.string(), default_decision: Decision, settings: RecordedTenantSettings });
export const TenantCreatedData = z.strictObject({ tenant_id: z.string(), config: TenantConfig, by: z.string() });
export const TenantChangedData = z.strictObject({ tenant_id: z.string(), before: TenantConfig, after: TenantConfig, by: z.string() });
/** A tenant's evaluator as recorded: never its API key, only a fingerprint that tells keys apart. */
export const EvaluatorRecord = z.strictObject({
  url: z.string(),
  model: z.string(),
  timeout_ms: z.number().int(),
  api_key_fingerprint: z.string().describe('sha256: and the first 16 hex digits of SHA-256 over the key: enough to see that the key changed, not the key.'),
});
/** The tenant's evaluator set, changed (before non-null) or removed (after null), and by whom. */
export const EvaluatorChangedData = z.strictObject({ tenant_id: z.string(), before: EvaluatorRecord.nullable(), after: EvaluatorRecord.nullable(), by: z.string() });
// the platform's settings stream: `platform/settings`
export const PlatformSettingsChangedData = z.strictObject({ before: RecordedPlatformSettings, after: RecordedPlatformSettings, by: z.string() });

export const EVENT_DATA = {
  DecisionRequested: DecisionRequestedData,
  PolicyEvaluated: PolicyEvaluatedData,
  DecisionFinalized: DecisionFinalizedData,
  JudgmentEvaluated: JudgmentEvaluatedData,
  ReceiptIssued: ReceiptIssuedData,
  ApprovalRequested: ApprovalRequestedData,
  NotificationSent: NotificationData,
  NotificationFailed: NotificationData,
  ApprovalGranted: ApprovalAnswerData,
  ApprovalRejected: ApprovalAnswerData,
  ApprovalEscalated: ApprovalEscalatedData,
  ApprovalExpired: ApprovalExpiredData,
  OverrideRequested: OverrideRequestedData,
  OverrideGranted: OverrideDecidedData,
  OverrideDenied: OverrideDecidedData,
  OutcomeReported: OutcomeReportedData,
  OutputViolation: OutputViolationData,
  PolicyActivated: PolicyActivatedData,
  PolicyDrafted: PolicyDraftedData,
  PolicyEdited: PolicyEditedData,
  PolicyValidated: PolicyValidatedData,
  PolicyDeprecated: PolicyDeprecatedData,
  PolicyRolledBack: PolicyRolledBackData,
  PolicyImported: PolicyImportedData,
  PolicyBound: PolicyBindingData,
  PolicyUnbound: PolicyBindingData,
  PolicyDeleted: PolicyDeletedData,
  AgentManifestForced: AgentManifestForcedData,
  PolicyActivationRequested: PolicyActivationRequestedData,
  PolicyActivationApproved: PolicyActivationAnswerData,
  PolicyActivationRejected: PolicyActivationAnswerData,
  PolicyActivationExpired: PolicyActivationExpiredData,
  // tool catalog streams: `catalog/<tenant>` (schemas/tool-catalog.ts)
  ToolCatalogRegistered: ToolCatalogRegisteredData,
  ToolCatalogRemoved: ToolCatalogRemovedData,
  // tenant streams: `tenant/<tenant>`
  TenantCreated: TenantCreatedData,
  TenantChanged: TenantChangedData,
  PrincipalCreated: PrincipalCreatedData,
  PrincipalChanged: PrincipalChangedData,
  PlatformAdminRevoked: PlatformAdminRevokedData,
  ApiKeyCreated: ApiKeyCreatedData,
  ApiKeyRevoked: ApiKeyRevokedData,
  DelegationGranted: DelegationGrantedData,
  DelegationRevoked: DelegationRevokedData,
  EvaluatorChanged: EvaluatorChangedData,
  PlatformSettingsChanged: PlatformSettingsChangedData,
} as const;
export type EventType = keyof typeof EVENT_DATA;
export const EVENT_TYPES = Object.keys(EVENT_DATA) as EventType[];
export const CURRENT_SCHEMA_VERSION = 1;

export type EventData<T extends EventType> = z.infer<(typeof EVENT_DATA)[T]>;

/** An event as a writer proposes it, before the store gives it a position and a hash. */
export type NewEvent<T extends EventType = EventType> = {
  [K in T]: { type: K; data: EventData<K>; eventId: string; metadata?: EventMetadata };
}[T];

export const EventMetadata = z.strictObject({
  causation_id: z.string().optional(),
  correlation_id: z.string().optional(),
  workflow_id: z.string().optional(),
});
export type EventMetadata = z.infer<typeof EventMetadata>;

/** The stored form: what Postgres holds and what Kafka carries, byte for byte. */
export const StoredEvent = z.strictObject({
  position: z.string().regex(/^\d+$/).describe('Global position, as a decimal string (bigint).'),
  stream_id: z.string().min(1).max(300),
  stream_version: z.number().int().positive(),
  event_id: z.string().min(1).max(300),
  type: z.string(),
  schema_version: z.number().int().positive(),
  tenant_id: z.string(),
  data: z.record(z.string(), z.unknown()),
  metadata: z.record(z.string(), z.unknown()),
  recorded_at: z.iso.datetime({ offset: true }),
  prev_hash: Sha256.nullable(),
  hash: Sha256,
});
export type StoredEvent = z.infer<typeof StoredEvent>;

/** Parse a stored event's data against its type's schema; throws a ZodError naming the field. */
export function parseEventData<T extends EventType>(type: T, data: unknown): EventData<T> {
  return EVENT_DATA[type].parse(data) as EventData<T>;
}

export function isKnownEventType(type: string): type is EventType {
  return Object.hasOwn(EVENT_DATA, type);
}
