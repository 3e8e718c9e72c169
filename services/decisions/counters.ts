import type { Db } from '../events/db.ts';
import { withTenant } from '../events/db.ts';
import type { CounterSpec } from '../policy/index.ts';

/**
 * Current values of the counters a request's limit rules need: for each key, the sum of the amounts recorded
 * in [now - window, now) (1 per request for rate limits, the field's value for cost limits). Read before the
 * pure evaluation, and recorded with it as facts. Concurrent requests may both see the same value, so a limit
 * can be passed by as many requests as arrive in the same instant: limits are soft at that edge.
 */
export async function readCounters(db: Db, tenantId: string, specs: CounterSpec[], now: Date): Promise<Record<string, number>> {
  if (specs.length === 0) return {};
  const res = await withTenant(db, tenantId, (c) =>
    c.query<{ key: string; total: number }>(
      `SELECT s.key, coalesce(sum(e.amount), 0)::float8 AS total
         FROM unnest($2::text[], $3::float8[]) AS s(key, window_sec)
         LEFT JOIN counter_entries e
           ON e.tenant_id = $1 AND e.key = s.key
          AND e.at >= $4::timestamptz - make_interval(secs => s.window_sec) AND e.at < $4::timestamptz
        GROUP BY s.key`,
      [tenantId, specs.map((s) => s.key), specs.map((s) => s.window_sec), now.toISOString()],
    ),
  );
  return Object.fromEntries(res.rows.map((r) => [r.key, Number(r.total)]));
}
