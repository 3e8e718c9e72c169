import { allHandlersFinished, ApplicationFailure, condition, defineQuery, defineUpdate, log, proxyActivities, setHandler } from '@temporalio/workflow';
import { z } from 'zod';
import type { EventData, PolicyChange } from '../schemas/events.ts';
import type { Activities } from '../activities/types.ts';
import { checkReviewAnswer, evolveReview, REVIEWER_ROLE, type ActivationReview } from '../services/lifecycle/activation-review.ts';
import { APPROVAL_CHANNELS, type ApprovalChannel } from '../schemas/approval-channel.ts';
import { attestationSchema, checkEnvelope, lazily, nonceSchema, parseMessage } from './decision-messages.ts';

/**
 * Four-eyes policy activation, in the same workflow engine as decisions: when a tenant sets `policy_four_eyes`,
 * activating a draft opens this review, and only a second admin's approval activates it. Every other change of
 * the active set (rollback, deprecate, bind, unbind) opens the same review (`change`), bound to the change's hash.
 * Deterministic code only: every step is an activity that appends to the policy stream (PolicyActivation
 * Requested / Approved + PolicyActivated / Rejected / Expired), and the review is folded with the same pure
 * `evolveReview` the API and the auditor use. Answers are updates with validators, so a refused answer never
 * reaches history and the caller gets the precise reason.
 */

export type PolicyActivationInput = {
  reviewId: string;
  tenantId: string;
  policyId: string;
  documentHash: string;
  requestedBy: string;
  /** The policy stream version the API checked the draft at: the review opens only if nothing changed since. */
  expectedStreamVersion: number;
  timeoutSec: number;
  expectedLoosening: string[];
  /** A rollback, deprecation, binding or unbinding instead of the draft's activation; `documentHash` is then the change's hash. */
  change?: PolicyChange;
  /** The API's MAC over all of the above (kind `policy_review_start`): the review opens only with a valid one. */
  attestation?: { issued_at: string; mac: string };
};

export type PolicyActivationResult =
  | { status: 'activated'; version: number; hash: string; approved_by: string }
  | { status: 'rejected' | 'expired' | 'refused'; reason: string };

/** An admin's answer, as the API attests it (roles are the caller's claim; the handler re-reads them). Built on
 * first use, like the decision messages: workflow modules are evaluated for every run the worker starts. */
const buildReviewAnswerInput = () => z.strictObject({
  kind: z.literal('policy_review'),
  review_id: z.string().min(1),
  nonce: nonceSchema(),
  verdict: z.enum(['approve', 'reject']),
  comment: z.string().max(4000).optional(),
  // Optional: answers sent before reviews recorded their channel carry none.
  channel: z.enum(APPROVAL_CHANNELS).optional(),
  by: z.string().min(1),
  roles: z.array(z.string()),
  tenant_id: z.string().min(1),
  document_hash: z.string(),
  attestation: attestationSchema(),
});
export const reviewAnswerInput = lazily(buildReviewAnswerInput);
export type ReviewAnswerInput = z.infer<ReturnType<typeof buildReviewAnswerInput>>;

export type ReviewOpened = { review_id: string; version: number; deadline: string; authors: string[] };
export type ReviewAnswerResult = { counted: true; status: ActivationReview['status']; version: number; hash?: string };

/** Defined once; the API and the tests import these same objects. */
export const reviewOpenedUpdate = defineUpdate<ReviewOpened, []>('reviewOpened');
export const reviewAnswerUpdate = defineUpdate<ReviewAnswerResult, [ReviewAnswerInput]>('reviewAnswer');
export const reviewQuery = defineQuery<ActivationReview | null>('review');

const { openPolicyReview, completePolicyReview, closePolicyReview, authorizePolicyReviewer } = proxyActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '10 seconds', nonRetryableErrorTypes: ['CountersignError'] },
});

// Notices never hold a review nor change it: bounded, and their failures are only logged.
const { notifyReviewers, announceReviewClosed } = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 3 } });

/** Answers accepted and then refused (see MAX_REFUSED_PER_RUN in decision-workflow.ts): past these, the validator refuses. */
export const MAX_REFUSED_REVIEW_ANSWERS = 20;
export const MAX_REFUSED_REVIEW_ANSWERS_PER_ADMIN = 3;

const refuse = (reason: string) => ApplicationFailure.create({ type: 'AnswerRefused', message: reason, nonRetryable: true });
const iso = (ms: number) => new Date(ms).toISOString();

export async function policyActivationWorkflow(input: PolicyActivationInput): Promise<PolicyActivationResult> {
  let review: ActivationReview | null = null;
  let refused: string | null = null;
  let busy = false; // one answer at a time: the first one that counts closes the review
  let outcome: PolicyActivationResult | null = null;

  setHandler(reviewQuery, () => review);

  setHandler(reviewOpenedUpdate, async () => {
    await condition(() => review !== null || refused !== null);
    if (!review) throw refuse(refused!);
    return { review_id: review.review_id, version: review.version, deadline: review.deadline, authors: review.authors };
  });

  const nonces = new Set<string>();
  let refusedAnswers = 0;
  const refusedOf = new Map<string, number>();
  const refuseFrom = (by: string, reason: string) => {
    refusedAnswers += 1;
    refusedOf.set(by, (refusedOf.get(by) ?? 0) + 1);
    return refuse(reason);
  };

  const claimed = (a: ReviewAnswerInput, roles: string[]) => ({ review_id: a.review_id, verdict: a.verdict, by: a.by, roles, document_hash: a.document_hash });

  setHandler(
    reviewAnswerUpdate,
    async (a) => {
      busy = true;
      nonces.add(a.nonce);
      try {
        const who = await authorizePolicyReviewer(a);
        if (!who.ok) throw refuseFrom(a.by, who.reason);
        const check = checkReviewAnswer(review, claimed(a, who.roles), new Date(Date.now()));
        if (!check.ok) throw refuseFrom(a.by, check.reason);
        const r = review!;
        const at = iso(Date.now());
        if (a.verdict === 'approve') {
          const done = await completePolicyReview({ tenantId: input.tenantId, policyId: input.policyId, reviewId: r.review_id, approvedBy: a.by, comment: a.comment, ...(a.channel ? { channel: a.channel } : {}) });
          if (!done.ok) throw refuse(done.reason);
          review = evolveReview(review, { type: 'PolicyActivationApproved', data: answerData(r, a.by, a.comment, a.channel, at) });
          outcome = { status: 'activated', version: done.version, hash: done.hash, approved_by: a.by };
          return { counted: true, status: 'approved', version: done.version, hash: done.hash };
        }
        const done = await closePolicyReview({ tenantId: input.tenantId, policyId: input.policyId, reviewId: r.review_id, outcome: 'rejected', by: a.by, comment: a.comment, ...(a.channel ? { channel: a.channel } : {}) });
        if (!done.ok) throw refuse(done.reason);
        review = evolveReview(review, { type: 'PolicyActivationRejected', data: answerData(r, a.by, a.comment, a.channel, at) });
        outcome = { status: 'rejected', reason: `rejected by ${a.by}${a.comment ? `: ${a.comment}` : ''}` };
        return { counted: true, status: 'rejected', version: r.version };
      } finally {
        busy = false;
      }
    },
    {
      // Cheap checks on the claimed identity before anything reaches history; the handler re-checks with the
      // roles the database confirms.
      validator: (raw: unknown) => {
        const a = parseMessage(reviewAnswerInput(), raw);
        if (a.tenant_id !== input.tenantId) throw new Error('the admin belongs to another tenant');
        // The review id is this workflow's id: an answer attested for another review is refused here.
        const bad = checkEnvelope(a, { claimed: a.review_id, actual: input.reviewId, what: 'review' }, nonces, Date.now());
        if (bad) throw new Error(bad);
        if (refusedAnswers >= MAX_REFUSED_REVIEW_ANSWERS || (refusedOf.get(a.by) ?? 0) >= MAX_REFUSED_REVIEW_ANSWERS_PER_ADMIN) throw new Error('this review refused too many answers already; it accepts no more that could be refused');
        if (busy) throw new Error('another answer to this review is being recorded; read the review and try again');
        const check = checkReviewAnswer(review, claimed(a, a.roles.includes(REVIEWER_ROLE) ? a.roles : []), new Date(Date.now()));
        if (!check.ok) throw new Error(check.reason);
      },
    },
  );

  const deadlineMs = Date.now() + input.timeoutSec * 1000;
  const opened = await openPolicyReview({
    tenantId: input.tenantId, policyId: input.policyId, reviewId: input.reviewId, expectedStreamVersion: input.expectedStreamVersion,
    requestedBy: input.requestedBy, documentHash: input.documentHash, deadline: iso(deadlineMs), expectedLoosening: input.expectedLoosening,
    start: input,
    ...(input.change ? { change: input.change } : {}),
  });
  if (!opened.ok) {
    refused = opened.reason;
    await condition(allHandlersFinished);
    return { status: 'refused', reason: opened.reason };
  }
  review = evolveReview(null, {
    type: 'PolicyActivationRequested',
    data: {
      policy_id: input.policyId, version: opened.version, review_id: input.reviewId, document_hash: input.documentHash,
      requested_by: input.requestedBy, authors: opened.authors, deadline: iso(deadlineMs),
      ...(input.expectedLoosening.length ? { expected_loosening: input.expectedLoosening } : {}),
      ...(input.change ? { change: input.change } : {}),
    },
  });

  const notice = { tenantId: input.tenantId, policyId: input.policyId, reviewId: input.reviewId };
  // The admins who may answer are told on Slack and by email while the review already waits: an answer from the
  // API may come before the notices.
  const notified = notifyReviewers(notice).then(
    (deliveries) => { const failed = deliveries.filter((d) => d.error); if (failed.length) log.warn('review notices failed', { failed }); },
    (err: unknown) => { log.warn('review notices failed', { error: String(err) }); },
  );

  // Wait for the answer that counts, or the deadline; an answer being recorded at the deadline finishes first.
  const left = deadlineMs - Date.now();
  if (!(left > 0 && (await condition(() => outcome !== null, left)))) {
    await condition(() => !busy);
    if (!outcome) {
      const closed = await closePolicyReview({ tenantId: input.tenantId, policyId: input.policyId, reviewId: input.reviewId, outcome: 'expired' });
      if (closed.ok) review = evolveReview(review, { type: 'PolicyActivationExpired', data: { policy_id: input.policyId, version: opened.version, review_id: input.reviewId, at: iso(Date.now()) } });
      outcome = closed.ok ? { status: 'expired', reason: `no second admin approved before ${iso(deadlineMs)}` } : { status: 'refused', reason: closed.reason };
    }
  }
  await condition(allHandlersFinished);
  // The messages show how the review ended.
  await notified;
  const closedNotice = await announceReviewClosed(notice).catch((err: unknown) => ({ updated: 0, errors: [String(err)] }));
  if (closedNotice.errors.length) log.warn('review closing notices failed', { errors: closedNotice.errors });
  return outcome!;
}

function answerData(r: ActivationReview, by: string, comment: string | undefined, channel: ApprovalChannel | undefined, at: string): EventData<'PolicyActivationApproved'> {
  return { policy_id: r.policy_id, version: r.version, review_id: r.review_id, by, ...(comment ? { comment } : {}), ...(channel ? { channel } : {}), at };
}
