import type { Queryable } from '../events/db.ts';

/**
 * Reads of the inbox projection (migration 0026: one row per open round or activation review, kept by the
 * append's own trigger). SQL only: what a round shows is built from the run's fold (run-messages.ts).
 */

/** Who hears of an item: a round's approver groups, or the admin role for activation reviews. */
export const groupAudience = (group: string): string => `group/${group}`;
export const ADMIN_AUDIENCE = 'role/admin';

export type OpenRoundRow = { stream_id: string; decision_id: string; round: number };

/**
 * The open decision and override rounds of the tenant that this principal may answer, soonest deadline first
 * (then oldest request): of one of its groups, not asked by it, not answered by it nor for it. One index range
 * per group (approval_inbox_audience_page), each already in order and limited, so the cost is the page's, never
 * the tenant's backlog. The caller's transaction is tenant-scoped (row-level security applies too).
 */
export async function openRoundsFor(c: Queryable, p: { tenant_id: string; id: string; groups: readonly string[] }, limit: number): Promise<OpenRoundRow[]> {
  if (p.groups.length === 0) return [];
  const res = await c.query<OpenRoundRow>(
    `SELECT i.stream_id, i.decision_id, i.round
       FROM approval_inbox i
      WHERE i.item_key IN (
              SELECT x.item_key FROM unnest($2::text[]) AS g(audience)
               CROSS JOIN LATERAL (
                 SELECT a.item_key FROM approval_inbox_audience a JOIN approval_inbox r ON r.item_key = a.item_key
                  WHERE a.tenant_id = $1 AND a.audience = g.audience AND r.kind <> 'activation_review'
                    AND NOT ($3 = ANY (r.excluded)) AND NOT ($3 = ANY (r.answered))
                  ORDER BY a.deadline, a.seq
                  LIMIT $4) x)
      ORDER BY i.deadline, i.seq
      LIMIT $4`,
    [p.tenant_id, [...new Set(p.groups)].map(groupAudience), p.id, limit],
  );
  return res.rows;
}

/** The open activation reviews of the tenant that this admin may answer (not asked by it, nor written by it, before their deadline), soonest deadline first. */
export async function openReviewsFor(c: Queryable, p: { tenant_id: string; id: string }, limit: number, now: Date): Promise<Array<{ review_id: string; stream_id: string }>> {
  const res = await c.query<{ review_id: string; stream_id: string }>(
    `SELECT r.review_id, r.stream_id FROM approval_inbox_audience a JOIN approval_inbox r ON r.item_key = a.item_key
      WHERE a.tenant_id = $1 AND a.audience = $2 AND r.kind = 'activation_review'
        AND NOT ($3 = ANY (r.excluded)) AND NOT ($3 = ANY (r.answered)) AND a.deadline > $5
      ORDER BY a.deadline, a.seq
      LIMIT $4`,
    [p.tenant_id, ADMIN_AUDIENCE, p.id, limit, now],
  );
  return res.rows;
}
