import type { Db } from '../events/db.ts';
import { isPlatformScope, PLATFORM_SCOPE } from '../events/stream-ids.ts';
import type { ActivationReview } from '../lifecycle/activation-review.ts';
import { loadPolicy } from '../lifecycle/policy-lifecycle.ts';

/**
 * The purpose of a review's Slack messages and email links: `review` for a tenant's policy (rows of that
 * tenant), `platform_review` for a platform policy (rows of each reviewer's home tenant: platform admins live
 * in tenants of their own).
 */
export const reviewPurpose = (owner: string) => (isPlatformScope(owner) ? 'platform_review' : 'review');
export const isReviewPurpose = (purpose: string) => purpose === 'review' || purpose === 'platform_review';
/** Whose policy a review's message or link is about: the platform's, or the row's tenant's. */
export const reviewOwner = (row: { purpose: string; tenant_id: string }) => (row.purpose === 'platform_review' ? PLATFORM_SCOPE : row.tenant_id);

/** What a reviewer is shown about one four-eyes review of a policy change (all of it Countersign's record). */
export type ReviewFacts = {
  tenant_id: string;
  review_id: string;
  policy_id: string;
  version: number;
  change: NonNullable<ActivationReview['change']> | { kind: 'activate' };
  status: ActivationReview['status'];
  requested_by: string;
  authors: string[];
  document_hash: string;
  expected_loosening: string[];
  deadline: string;
  answers: Array<{ by: string; verdict: 'approve' | 'reject' }>;
};

/** The review as the policy stream records it, or null when the stream holds no review of that id (or is another tenant's). */
export async function loadReviewFacts(db: Db, tenantId: string, policyId: string, reviewId: string): Promise<ReviewFacts | null> {
  const s = await loadPolicy(db, tenantId, policyId);
  const r = s?.review;
  if (!s || !r || r.review_id !== reviewId) return null;
  return {
    tenant_id: tenantId, review_id: r.review_id, policy_id: r.policy_id,
    version: r.version, change: r.change ?? { kind: 'activate' }, status: r.status, requested_by: r.requested_by, authors: r.authors,
    document_hash: r.document_hash, expected_loosening: r.expected_loosening, deadline: r.deadline,
    answers: [...r.approvals.map((a) => ({ by: a.by, verdict: 'approve' as const })), ...r.rejections.map((a) => ({ by: a.by, verdict: 'reject' as const }))],
  };
}
