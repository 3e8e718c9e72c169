import { z } from 'zod';
import { Constraints, Decision, DecisionStatus, MatchedRule } from './decision.ts';
import { ApprovalChannelName, Sha256 } from './events.ts';

/**
 * The receipt: the signed summary of one decision run (design.md, "Receipts").
 *
 * Hazard: a receipt is signed over its RFC 8785 canonical JSON, and replay must rebuild it byte for
 * byte (invariant 3). So nothing here may carry a default or a transform: what the producer passes
 * in is exactly what gets signed, and parsing a stored receipt never changes it.
 */

const Instant = z.iso.datetime({ offset: true });
const Id = z.string().min(1).max(300);

export const RECEIPT_VERSION = 1;

/** What was asked, without the arguments: they may hold personal data, so only their digest is kept. */
export const ReceiptAction = z.strictObject({
  tool: z.string().min(1),
  operation: z.string().min(1).optional(),
  topic: z.string().min(1).optional(),
  capability: z.string().min(1).optional(),
  args_digest: Sha256.nullable().describe('sha256 over the canonical JSON of the arguments; null when there were none.'),
  edited_args_digest: Sha256.optional().describe('When approvers approved changed arguments: the digest of those, which the decision is for.'),
});
export type ReceiptAction = z.infer<typeof ReceiptAction>;

export const ReceiptPolicy = z.strictObject({
  policy_id: z.string(),
  version: z.number().int().nonnegative(),
  hash: Sha256.describe('Hash of the activated policy version that took part in the evaluation.'),
  scope: z.literal('platform').optional().describe('Present for a platform policy: one that applies to every tenant, written by platform admins.'),
});
export type ReceiptPolicy = z.infer<typeof ReceiptPolicy>;

/** The approval channels (schemas/approval-channel.ts), as the receipt's field. */
export const ApprovalChannel = ApprovalChannelName;
export type ApprovalChannel = z.infer<typeof ApprovalChannel>;

export const ReceiptApproval = z.strictObject({
  approver_id: Id.describe('Principal id of the approver.'),
  verdict: z.enum(['approve', 'reject']),
  channel: ApprovalChannel,
  at: Instant,
  comment: z.string().max(4000).optional(),
  on_behalf_of: Id.optional().describe('The approver answered as the delegate of this principal.'),
  edited_args_digest: Sha256.optional().describe('The digest of the changed arguments this approval approved, when it approved an edit.'),
});
export type ReceiptApproval = z.infer<typeof ReceiptApproval>;

export const ReceiptOverride = z.strictObject({
  requested_by: Id.describe('Principal id that asked for the override.'),
  justification: z.string().min(1).max(4000),
  requested_at: Instant,
  outcome: z.enum(['granted', 'denied', 'pending']),
  decided_by: Id.optional(),
  decided_at: Instant.optional(),
});
export type ReceiptOverride = z.infer<typeof ReceiptOverride>;

export const ReceiptViolation = z.strictObject({
  policy_id: z.string(),
  rule: z.string(),
  reason: z.string(),
});
export type ReceiptViolation = z.infer<typeof ReceiptViolation>;

export const ReceiptOutcome = z.strictObject({
  status: z.enum(['succeeded', 'failed']),
  reported_at: Instant,
  output_digest: Sha256.describe('sha256 over the canonical JSON of what the tool returned.'),
  violations: z.array(ReceiptViolation),
});
export type ReceiptOutcome = z.infer<typeof ReceiptOutcome>;

/** A round of requirements as the receipt records it: each requirement's ladder and outcome, and who was asked at each level. */
export const ReceiptApprovalRound = z.strictObject({
  round: z.number().int().positive(),
  requirements: z.array(z.strictObject({
    id: z.number().int().positive(),
    policy_id: z.string(),
    version: z.number().int().nonnegative(),
    rule: z.string(),
    levels: z.array(z.strictObject({ groups: z.array(z.string()), quorum: z.number().int().positive(), timeout_sec: z.number().int().positive() })),
    on_timeout: z.enum(['DENY', 'ALLOW']),
    level: z.number().int().nonnegative().describe('The level it reached (0-based).'),
    status: z.enum(['open', 'approved', 'waived', 'expired']),
    approved_by: z.array(Id),
  })),
  levels: z.array(z.strictObject({
    level: z.number().int().nonnegative(),
    groups: z.array(z.string()),
    deadline: Instant,
    asked: z.array(z.string()).describe('Principals notified while the round was at this level.'),
  })),
});
export type ReceiptApprovalRound = z.infer<typeof ReceiptApprovalRound>;

export const Receipt = z
  .strictObject({
    receipt_version: z.literal(RECEIPT_VERSION),
    decision_id: Id,
    tenant_id: Id,
    agent_id: Id,
    request_digest: Sha256.describe('sha256 over the canonical JSON of the decision request as received.'),
    action: ReceiptAction,
    decision: Decision.describe('Equals the decision the agent received (invariant 1).'),
    status: DecisionStatus,
    reason: z.string(),
    matched_rule: z.string().nullable(),
    matched_rules: z.array(MatchedRule),
    policies: z.array(ReceiptPolicy),
    snapshot_hash: Sha256,
    facts: z.record(z.string(), z.unknown()).describe('Every value from outside the evaluator (counters, ...).'),
    evaluated_at: Instant.describe('The `now` the evaluator used.'),
    constraints: Constraints,
    approvals: z.array(ReceiptApproval),
    approval_rounds: z.array(ReceiptApprovalRound).optional().describe('Present only for runs whose round had requirements (several rules, or a ladder).'),
    overrides: z.array(ReceiptOverride),
    outcome: ReceiptOutcome.nullable(),
    stream_id: Id,
    head_hash: Sha256.describe('Hash of the last event folded into this receipt.'),
    head_version: z.number().int().positive().describe('Stream version of that event.'),
    issued_at: Instant,
  })
  .describe('The signed summary of one decision run.');
export type Receipt = z.infer<typeof Receipt>;

/** base64url without padding, as RFC 7515 and RFC 8037 use it. */
const Base64Url = z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected base64url without padding');

/** `ed25519:` + first 16 hex chars of sha256 over the raw 32-byte public key. */
export const SigningKeyId = z.string().regex(/^ed25519:[0-9a-f]{16}$/, 'expected ed25519:<16 hex>');

export const DocumentSignature = z.strictObject({
  alg: z.literal('Ed25519'),
  key_id: SigningKeyId,
  value: Base64Url.describe('Ed25519 signature over the canonical JSON of the signed document.'),
});
export type DocumentSignature = z.infer<typeof DocumentSignature>;

export const SignedReceipt = z.strictObject({
  receipt: Receipt,
  signature: DocumentSignature,
});
export type SignedReceipt = z.infer<typeof SignedReceipt>;

/**
 * Retired keys no longer sign but still verify what they signed; revoked keys verify nothing
 * (their private half is presumed compromised).
 */
export const SigningKeyStatus = z.enum(['active', 'retired', 'revoked']);
export type SigningKeyStatus = z.infer<typeof SigningKeyStatus>;

/** One public key, JWK-shaped (RFC 8037 OKP) plus our lifecycle fields. */
export const PublicSigningKey = z.looseObject({
  kid: SigningKeyId,
  kty: z.literal('OKP'),
  crv: z.literal('Ed25519'),
  x: Base64Url.length(43, 'expected a 32-byte key (43 base64url chars)'),
  status: SigningKeyStatus,
  created_at: Instant,
});
export type PublicSigningKey = z.infer<typeof PublicSigningKey>;

/** What `GET /v1/keys` serves, and what `countersign audit verify --keys` reads. */
export const PublicKeySet = z.looseObject({ keys: z.array(PublicSigningKey) });
export type PublicKeySet = z.infer<typeof PublicKeySet>;
