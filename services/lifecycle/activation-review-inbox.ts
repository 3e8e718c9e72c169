import { withTenant, type Db } from '../events/db.ts';
import type { Principal } from '../identity/principals.ts';
import { checkReviewAnswer, evolveReview, REVIEW_EVENT_TYPES, type ActivationReview, type ReviewEvent } from './activation-review.ts';

/** An open four-eyes review in a reviewer's inbox (GET /v1/approvals, kind activation_review). */
export type PendingReview = {
  kind: 'activation_review';
  review_id: string;
  policy_id: string;
  version: number;
  /** What the review stands for: activate (the draft), or rollback, deprecate, bind, unbind. */
  change: 'activate' | NonNullable<ActivationReview['change']>['kind'];
  requested_by: string;
  authors: string[];
  document_hash: string;
  expected_loosening: string[];
  deadline: string;
};

/**
 * The tenant's open activation reviews this principal may answer now: the same check the review workflow makes
 * (checkReviewAnswer: an admin, not the requester nor an author, not answered yet, before the deadline), folded
 * from the policy streams' review events. Soonest deadline first, at most `limit`.
 */
export async function pendingReviews(db: Db, principal: Principal, limit: number, now = new Date()): Promise<PendingReview[]> {
  if (!principal.roles.includes('admin')) return [];
  const rows = await withTenant(db, principal.tenant_id, (c) => c.query<{ type: ReviewEvent['type']; data: ReviewEvent['data'] }>(
    `SELECT e.type, e.data FROM events e
      WHERE e.tenant_id = $1 AND e.type = ANY($2::text[])
        AND e.data->>'review_id' IN (
          SELECT r.data->>'review_id' FROM events r
           WHERE r.tenant_id = $1 AND r.type = 'PolicyActivationRequested' AND (r.data->>'deadline')::timestamptz > $3
             AND NOT EXISTS (SELECT 1 FROM events x WHERE x.stream_id = r.stream_id AND x.stream_version > r.stream_version
                               AND x.type IN ('PolicyActivationApproved', 'PolicyActivationRejected', 'PolicyActivationExpired')
                               AND x.data->>'review_id' = r.data->>'review_id'))
      ORDER BY e.position`,
    [principal.tenant_id, REVIEW_EVENT_TYPES, now.toISOString()],
  ));
  const reviews = new Map<string, ActivationReview | null>();
  for (const e of rows.rows) {
    const id = e.data.review_id;
    reviews.set(id, evolveReview(reviews.get(id) ?? null, { type: e.type, data: e.data } as ReviewEvent));
  }
  const out: PendingReview[] = [];
  for (const r of reviews.values()) {
    if (!r) continue;
    const may = checkReviewAnswer(r, { review_id: r.review_id, verdict: 'approve', by: principal.id, roles: principal.roles, document_hash: r.document_hash }, now);
    if (!may.ok) continue;
    out.push({
      kind: 'activation_review', review_id: r.review_id, policy_id: r.policy_id, version: r.version, change: r.change?.kind ?? 'activate',
      requested_by: r.requested_by, authors: r.authors, document_hash: r.document_hash, expected_loosening: r.expected_loosening, deadline: r.deadline,
    });
  }
  return out.sort((a, b) => a.deadline.localeCompare(b.deadline) || a.review_id.localeCompare(b.review_id)).slice(0, limit);
}
