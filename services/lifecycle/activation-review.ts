import type { EventData, PolicyChange } from '../../schemas/events.ts';

/**
 * Four-eyes activation (issue 7): the approval round that stands between a draft and its activation when the
 * tenant sets `policy_four_eyes`. Pure and deterministic (no clock, no I/O, no node: imports): the review
 * workflow (workflows/policy-activation-workflow.ts), the policy fold (policy-store.ts) and the auditor's
 * replay all fold a review with this one `evolveReview`, and the workflow's update validator and handler
 * decide with this one `checkReviewAnswer`.
 *
 * It is the decision workflow's approval round (services/decisions/run-view.ts) narrowed to what activating
 * a policy needs: one second admin (quorum 1) instead of approver groups, the round bound to the exact draft
 * document (its hash) instead of a call's arguments, and every author of the change excluded, not only the
 * requester. `checkAnswer` there cannot be reused as it is: it admits the `approver` role and the round's groups.
 */

export type ReviewAnswer = { by: string; comment?: string | undefined; at: string };

export type ActivationReview = {
  review_id: string;
  policy_id: string;
  version: number;
  document_hash: string;
  requested_by: string;
  authors: string[];
  deadline: string;
  expected_loosening: string[];
  /** What the review stands for when it is not the activation of the draft: a rollback, deprecation, binding or unbinding. */
  change?: PolicyChange;
  status: 'open' | 'approved' | 'rejected' | 'expired';
  approvals: ReviewAnswer[];
  rejections: ReviewAnswer[];
};

export type ReviewEvent =
  | { type: 'PolicyActivationRequested'; data: EventData<'PolicyActivationRequested'> }
  | { type: 'PolicyActivationApproved'; data: EventData<'PolicyActivationApproved'> }
  | { type: 'PolicyActivationRejected'; data: EventData<'PolicyActivationRejected'> }
  | { type: 'PolicyActivationExpired'; data: EventData<'PolicyActivationExpired'> };

export const REVIEW_EVENT_TYPES: ReadonlyArray<ReviewEvent['type']> = ['PolicyActivationRequested', 'PolicyActivationApproved', 'PolicyActivationRejected', 'PolicyActivationExpired'];

export const isReviewEvent = (e: { type: string }): e is ReviewEvent => (REVIEW_EVENT_TYPES as readonly string[]).includes(e.type);

/** The role that may approve an activation. */
export const REVIEWER_ROLE = 'admin';

/** Folds one review event. An event of another review than the one folded so far starts over only when it is a request. */
export function evolveReview(review: ActivationReview | null, event: ReviewEvent): ActivationReview | null {
  switch (event.type) {
    case 'PolicyActivationRequested': {
      const d = event.data;
      return {
        review_id: d.review_id, policy_id: d.policy_id, version: d.version, document_hash: d.document_hash, requested_by: d.requested_by,
        authors: d.authors, deadline: d.deadline, expected_loosening: d.expected_loosening ?? [], ...(d.change ? { change: d.change } : {}), status: 'open', approvals: [], rejections: [],
      };
    }
    case 'PolicyActivationApproved': {
      if (!review || review.review_id !== event.data.review_id) return review;
      const d = event.data;
      return { ...review, status: 'approved', approvals: [...review.approvals, { by: d.by, comment: d.comment, at: d.at }] };
    }
    case 'PolicyActivationRejected': {
      if (!review || review.review_id !== event.data.review_id) return review;
      const d = event.data;
      return { ...review, status: 'rejected', rejections: [...review.rejections, { by: d.by, comment: d.comment, at: d.at }] };
    }
    case 'PolicyActivationExpired':
      if (!review || review.review_id !== event.data.review_id) return review;
      return { ...review, status: 'expired' };
    default: {
      const never: never = event;
      return never;
    }
  }
}

/** An admin's answer as the API vouches for it (identity from the caller's key, roles as the database has them). */
export type ReviewAnswerCommand = {
  review_id: string;
  verdict: 'approve' | 'reject';
  by: string;
  roles: string[];
  document_hash: string;
};

/**
 * Whether an answer may count: a review that exists and is open, before its deadline, for the exact document
 * it is bound to, from an admin of the tenant who wrote no part of the change, once. The precise reason otherwise.
 */
export function checkReviewAnswer(review: ActivationReview | null, a: ReviewAnswerCommand, now: Date): { ok: true } | { ok: false; reason: string } {
  if (!review) return { ok: false, reason: 'the activation review has not been recorded yet' };
  if (a.review_id !== review.review_id) return { ok: false, reason: `the answer is for review ${a.review_id}, not ${review.review_id}` };
  if (review.status !== 'open') return { ok: false, reason: `the activation of ${review.policy_id} v${review.version} is already ${review.status}` };
  if (now.getTime() > Date.parse(review.deadline)) return { ok: false, reason: `the activation review closed at its deadline ${review.deadline}` };
  if (a.by === review.requested_by) return { ok: false, reason: 'the admin who asked for the activation cannot approve or reject it: a second admin must' };
  if (review.authors.includes(a.by)) return { ok: false, reason: 'an author of the change cannot approve or reject its activation: a second admin must' };
  if (!a.roles.includes(REVIEWER_ROLE)) return { ok: false, reason: 'only an admin may answer a policy activation review' };
  if ([...review.approvals, ...review.rejections].some((x) => x.by === a.by)) return { ok: false, reason: 'the admin already answered this review' };
  if (a.document_hash !== review.document_hash) return { ok: false, reason: 'the answer is for another draft document than the review is bound to' };
  return { ok: true };
}
