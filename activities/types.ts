import type { ActiveDelegation } from '../services/decisions/delegation-rules.ts';
import type { DecisionRequest, DecisionResult, JudgmentItem } from '../schemas/decision.ts';
import type { ApprovalChannel } from '../schemas/approval-channel.ts';
import type { JudgmentVerdict, NewEvent, PolicyChange } from '../schemas/events.ts';
import type { RunEvent } from '../services/decisions/run-view.ts';

/** Activity signatures, importable by workflow code (types only: no I/O crosses this file). */
export type AppendRunEventsInput = {
  decisionId: string;
  tenantId: string;
  expectedVersion: number;
  events: NewEvent[];
  /** Written in the same transaction as the run's first events, so the key outlives Temporal's retention. */
  idempotency?: { key: string; requestDigest: string };
  /** Counter entries written in the same transaction (the action went ahead). */
  counters?: { at: string; entries: Array<{ key: string; amount: number }> };
  /**
   * Also sign and append the receipt over these events, the run's first (expectedVersion 0): a run that is
   * final at its start records everything in one activity, so its first workflow task is its only one.
   */
  withReceipt?: boolean;
  workflowId: string;
  /**
   * Answers in this batch decided with the identity the API attested: each message is authorized as the
   * authorize activity does, and its approver's roles and groups now must be these (and no delegation in
   * force), or nothing is written.
   */
  identities?: Array<{ message: AuthorizeInput; roles: string[]; groups: string[] }>;
};
/** A run event the log holds that the workflow did not send (an earlier attempt of its task wrote it). */
export type AdoptedEvent = RunEvent & { stream_version: number };

/**
 * What an append left in the run's stream. `written`, `adopted` and `sealed` are present only when the stream
 * held something other than the batch at the expected version (services/events/append-reconciled.ts): then
 * `written` of the batch's events stand, the rest were not written, and `adopted` follow them in the log.
 */
export type AppendRunEventsResult = {
  streamVersion: number; duplicate: boolean; written?: number; adopted?: AdoptedEvent[]; sealed?: boolean;
  /** Present when an identity did not hold and nothing was written: per identity, `same` or what the database says. */
  identities?: Array<'same' | AuthorizeResult>;
};

export type IssueReceiptInput = { decisionId: string; tenantId: string; headVersion: number; workflowId: string };
/**
 * `adopted`: the stream held events this receipt did not expect (see AppendRunEventsResult); `issued` says
 * whether the receipt stands before them.
 */
export type IssueReceiptResult = { streamVersion: number; issued?: boolean; adopted?: AdoptedEvent[] };

/**
 * A message the API vouches for: an HMAC over its canonical JSON with a secret only the API and the worker
 * hold. An update sent to Temporal directly, by anyone else, cannot carry a valid one.
 */
export type Attestation = { issued_at: string; mac: string };
export type Attested<T> = T & { attestation: Attestation };
export type AuthorizeInput = Attested<{ kind: string; tenant_id: string } & Record<string, unknown>>;
export type AuthorizeResult =
  | { ok: true; principal_id: string; roles: string[]; groups: string[]; /** For an answer: delegations to the approver in force now (absent when none). */ delegations?: ActiveDelegation[] }
  | { ok: false; reason: string };

export type NotifyInput = {
  decisionId: string; tenantId: string; round: number; purpose: 'request' | 'escalation' | 'reminder'; groups: string[]; requestedBy: string;
  /** A reminder's escalation level, as it was when the reminder was due (absent in runs recorded before it was sent). */
  level?: number;
};
/** One delivery: sent, failed (`error`), or held back by the per-approver cap for the approver's digest (`queued`). */
export type Delivery = { channel: ApprovalChannel; recipient: string; error?: string; queued?: boolean };
export type RoundClosedInput = { decisionId: string; tenantId: string; round: number };
export type RoundClosedResult = { updated: number; errors: string[] };

/** Asks the tenant's evaluator about each judgment rule of a request; never throws for the evaluator's faults (verdict error). */
export type JudgeInput = { tenantId: string; decisionId: string; request: DecisionRequest; checklist: JudgmentItem[] };
export type JudgeResult = { verdicts: JudgmentVerdict[]; model: string };

export type CallbackInput = { url: string; tenantId: string; decisionId: string; result: DecisionResult };

/** Four-eyes policy activation (issue 7): the review workflow's steps, each one idempotent append to the policy stream. */
export type OpenPolicyReviewInput = {
  tenantId: string; policyId: string; reviewId: string; expectedStreamVersion: number; requestedBy: string;
  documentHash: string; deadline: string; expectedLoosening: string[];
  /** The workflow's whole input, with the API's attestation: checked before the review is opened. */
  start?: { reviewId: string; tenantId: string; policyId: string; documentHash: string; requestedBy: string; expectedStreamVersion: number; timeoutSec: number; expectedLoosening: string[]; attestation?: Attestation; change?: PolicyChange | undefined; notify?: boolean | undefined };
  /** Set when the review stands for a rollback, deprecation, binding or unbinding instead of the draft's activation. */
  change?: PolicyChange;
};
export type OpenPolicyReviewResult = { ok: true; version: number; authors: string[] } | { ok: false; reason: string };
export type CompletePolicyReviewInput = { tenantId: string; policyId: string; reviewId: string; approvedBy: string; comment?: string | undefined; channel?: ApprovalChannel | undefined };
export type CompletePolicyReviewResult = { ok: true; version: number; hash: string } | { ok: false; reason: string };
export type ClosePolicyReviewInput = { tenantId: string; policyId: string; reviewId: string; outcome: 'rejected' | 'expired'; by?: string; comment?: string | undefined; channel?: ApprovalChannel | undefined };
/** A four-eyes review whose reviewers are notified, or whose messages show how it ended. */
export type ReviewNoticeInput = { tenantId: string; policyId: string; reviewId: string };
export type AuthorizeReviewerInput = Attested<{ kind: 'policy_review'; tenant_id: string; by: string } & Record<string, unknown>>;

export interface Activities {
  appendRunEvents(input: AppendRunEventsInput): Promise<AppendRunEventsResult>;
  issueReceipt(input: IssueReceiptInput): Promise<IssueReceiptResult>;
  authorize(input: AuthorizeInput): Promise<AuthorizeResult>;
  notifyApprovers(input: NotifyInput): Promise<Delivery[]>;
  /** Shows a closed round's final state on every Slack message that carried its buttons. */
  announceRoundClosed(input: RoundClosedInput): Promise<RoundClosedResult>;
  deliverCallback(input: CallbackInput): Promise<{ status: number }>;
  judgeRequest(input: JudgeInput): Promise<JudgeResult>;
  openPolicyReview(input: OpenPolicyReviewInput): Promise<OpenPolicyReviewResult>;
  completePolicyReview(input: CompletePolicyReviewInput): Promise<CompletePolicyReviewResult>;
  closePolicyReview(input: ClosePolicyReviewInput): Promise<{ ok: true } | { ok: false; reason: string }>;
  authorizePolicyReviewer(input: AuthorizeReviewerInput): Promise<AuthorizeResult>;
  /** Notifies the admins who may answer a review on Slack and by email. */
  notifyReviewers(input: ReviewNoticeInput): Promise<Delivery[]>;
  /** Shows a closed review's outcome on every Slack message that carried its buttons. */
  announceReviewClosed(input: ReviewNoticeInput): Promise<RoundClosedResult>;
}
