import { withSystem, type Db } from '../events/db.ts';

/**
 * Decisions waiting for an answer (an approval round or an override request open), across every tenant, and how
 * long the oldest has waited since it was asked for: the operators' gauges, read from the monitor projection
 * (written in the same transaction as each append). Counts only: no tenant, id or row leaves this query.
 */
export async function approvalsWaiting(db: Db, now: Date = new Date()): Promise<{ waiting: number; oldestSeconds: number }> {
  const res = await withSystem(db, 'metrics', (c) => c.query<{ n: string; oldest: Date | null }>(
    "SELECT count(*)::text AS n, min(requested_at) AS oldest FROM decision_monitor WHERE status = 'pending_approval'",
  ));
  const row = res.rows[0];
  const oldest = row?.oldest ? Math.max(0, (now.getTime() - row.oldest.getTime()) / 1000) : 0;
  return { waiting: Number(row?.n ?? 0), oldestSeconds: oldest };
}
