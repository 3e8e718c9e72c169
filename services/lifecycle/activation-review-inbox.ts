import { withTenant, type Db } from '../events/db.ts';
import type { Principal } from '../identity/principals.ts';
import { openReviewsFor } from '../decisions/approval-inbox.ts';
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
 * (checkReviewAnswer: an admin, not the requester nor an author, not answered yet, before the deadline), chosen
 * from the inbox projection and folded from their policy streams' review events. Soonest deadline first, at most `limit`.
 */
export async function pendingReviews(db: Db, principal: Principal, limit: number, now = new Date()): Promise<PendingReview[]> {
  if (!principal.roles.includes('admin')) return [];
  // The candidates from the inbox projection (migration 0026), then their events folded and checked.
  const rows = await withTenant(db, principal.tenant_id, async (c) => {
    const open = await openReviewsFor(c, principal, limit, now);
    if (open.length === 0) return [];
    return (await c.query<{ type: ReviewEvent['type']; data: ReviewEvent['data'] }>(
      `SELECT e.type, e.data FROM events e
        WHERE e.stream_id = ANY($1::text[]) AND e.type = ANY($2::text[]) AND e.data->>'review_id' = ANY($3::text[])
        ORDER BY e.position`,
      [[...new Set(open.map((o) => o.stream_id))], REVIEW_EVENT_TYPES, open.map((o) => o.review_id)],
    )).rows;
  });
  const reviews = new Map<string, ActivationReview | null>();
  for (const e of rows) {
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
