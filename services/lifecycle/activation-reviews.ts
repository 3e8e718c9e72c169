import { randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import {
  policyActivationWorkflow, reviewAnswerUpdate, reviewOpenedUpdate, type PolicyActivationInput,
  type ReviewAnswerInput, type ReviewAnswerResult,
} from '../../workflows/policy-activation-workflow.ts';
import { attest, attestReviewStart, newNonce } from '../decisions/attestation.ts';
import { asTemporalError } from '../decisions/request-decision.ts';
import { CountersignError } from '../errors.ts';
import type { Db } from '../events/db.ts';
import type { Principal } from '../identity/principals.ts';
import { loadPolicy, planActivation, type ActivationAnswer, type ActivationOptions, type Actor } from './policy-lifecycle.ts';
import { openReview } from './policy-store.ts';
import { REVIEWER_ROLE } from './activation-review.ts';
import { isPlatformScope } from '../events/stream-ids.ts';
import type { ApprovalChannel } from '../../schemas/approval-channel.ts';
import { planChange, type PolicyChange } from './policy-change.ts';
import { sendUpdate, UPDATE_DEADLINE_MS, updateIdOf } from '../temporal/send-update.ts';

/**
 * The API's half of four-eyes activation: start the review workflow and wait until it has recorded the
 * request (or refused it), and send admins' answers in as attested, validated Temporal updates.
 */
export type ReviewDeps = { db: Db; temporal: Client; taskQueue: string; secret: () => Buffer };

export type ReviewRequested = { id: string; version: number; status: 'pending_approval'; review_id: string; deadline: string; authors: string[]; requested_by: string };

function refusal(err: unknown, code: 'answer_refused' | 'conflict'): unknown {
  if (err instanceof WorkflowUpdateFailedError) {
    return new CountersignError(code, (err.cause)?.message ?? err.message, { extra: { counted: false } });
  }
  return asTemporalError(err);
}

export async function requestActivationReview(deps: ReviewDeps, a: Actor, policyId: string, opts: ActivationOptions): Promise<ReviewRequested | ActivationAnswer> {
  const plan = await planActivation(deps.db, a, policyId, opts);
  if ('unchanged' in plan) return plan.unchanged;
  const s = plan.state;
  // Random, not derived: Temporal outlives databases, and two racing requests are settled by the append's
  // expected version (the loser's workflow ends refused).
  const reviewId = `policy-review/${a.tenantId}/${policyId}/v${s.draft!.version}/${randomUUID()}`;
  return startReview(deps, a, {
    reviewId, tenantId: a.tenantId, policyId, documentHash: plan.documentHash, requestedBy: a.principalId,
    expectedStreamVersion: s.stream_version, timeoutSec: plan.settings.reviewTimeoutSec, expectedLoosening: plan.expectedLoosening,
  });
}

/**
 * Starts a review workflow, attested like every message the API sends into a workflow (a review started by
 * anyone else opens nothing; a change review's change is under the MAC), and waits until it has opened.
 */
async function startReview(deps: ReviewDeps, a: Actor, start: PolicyActivationInput): Promise<ReviewRequested> {
  try {
    const handle = await deps.temporal.withDeadline(Date.now() + UPDATE_DEADLINE_MS, () => deps.temporal.workflow.start(policyActivationWorkflow, {
      taskQueue: deps.taskQueue,
      workflowId: start.reviewId,
      args: [attestReviewStart(deps.secret(), start, new Date())],
    }));
    const opened = await deps.temporal.withDeadline(Date.now() + UPDATE_DEADLINE_MS, () => handle.executeUpdate(reviewOpenedUpdate, { args: [] }));
    return { id: start.policyId, version: opened.version, status: 'pending_approval', review_id: opened.review_id, deadline: opened.deadline, authors: opened.authors, requested_by: a.principalId };
  } catch (err) {
    throw refusal(err, 'conflict');
  }
}

export type ChangeReviewRequested = ReviewRequested & { change: PolicyChange };

/**
 * A rollback, deprecation, binding or unbinding in a four-eyes tenant: checked as the direct path checks it, then
 * a review bound to the change as planned, answered like an activation review (POST /v1/policies/{id}/activation/approvals).
 */
export async function requestChangeReview(deps: ReviewDeps, a: Actor, policyId: string, change: PolicyChange): Promise<ChangeReviewRequested | Record<string, unknown>> {
  const plan = await planChange(deps.db, a, policyId, change);
  if (plan.unchanged && change.kind === 'bind') return { agent_id: change.agent_id, policy_id: policyId, unchanged: true };
  const reviewId = `policy-review/${a.tenantId}/${policyId}/${change.kind}/${randomUUID()}`;
  const opened = await startReview(deps, a, {
    reviewId, tenantId: a.tenantId, policyId, documentHash: plan.changeHash, requestedBy: a.principalId,
    expectedStreamVersion: plan.state.stream_version, timeoutSec: plan.settings.reviewTimeoutSec, expectedLoosening: [], change,
  });
  return { ...opened, change };
}

/** An admin's answer to the review waiting on a policy: counted when this returns, refused with the reason otherwise. */
/**
 * `owner` is the principal's tenant, or PLATFORM_SCOPE for a platform admin answering a platform policy's review
 * (the worker then checks the answer's author is a platform admin, wherever its home tenant).
 */
export async function answerActivationReview(
  deps: Omit<ReviewDeps, 'taskQueue'>, principal: Principal, policyId: string, body: { verdict: 'approve' | 'reject'; comment?: string | undefined; review_id?: string | undefined },
  owner: string = principal.tenant_id,
  channel: ApprovalChannel = 'api',
): Promise<ReviewAnswerResult & { id: string; review_id: string }> {
  const s = await loadPolicy(deps.db, owner, policyId);
  if (!s || s.deleted) throw new CountersignError('not_found', `policy ${policyId} not found`);
  const review = openReview(s);
  if (!review) {
    const last = s.review;
    throw new CountersignError('answer_refused', last ? `the activation review of ${policyId} v${last.version} is already ${last.status}` : `policy ${policyId} has no activation review waiting`, { extra: { counted: false } });
  }
  if (body.review_id !== undefined && body.review_id !== review.review_id) {
    throw new CountersignError('answer_refused', `the answer is for review ${body.review_id}, but the review waiting is ${review.review_id}`, { extra: { counted: false } });
  }
  const message: ReviewAnswerInput = attest(deps.secret(), {
    kind: 'policy_review' as const,
    review_id: review.review_id,
    nonce: newNonce(),
    verdict: body.verdict,
    ...(body.comment ? { comment: body.comment } : {}),
    channel,
    by: principal.id,
    // In the platform scope a platform admin is the reviewer role (the route checked the flag; the worker re-checks it).
    roles: isPlatformScope(owner) ? [REVIEWER_ROLE] : principal.roles,
    tenant_id: owner,
    document_hash: review.document_hash,
  }, new Date());
  try {
    // Its own update id and the same recovery as a run's answer: sent again while a worker recovers the review's
    // task, and joined (not delivered twice) when a try was cut short after Temporal admitted it.
    const handle = deps.temporal.workflow.getHandle(review.review_id);
    const res = await sendUpdate(deps.temporal, () => handle.executeUpdate(reviewAnswerUpdate, { args: [message], updateId: updateIdOf(message) }));
    return { ...res, id: policyId, review_id: review.review_id };
  } catch (err) {
    throw refusal(err, 'answer_refused');
  }
}
