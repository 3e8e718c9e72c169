import type { DecisionSummary } from '../../schemas/api.ts';
import { withTenant, type Db } from '../events/db.ts';
import { foldRun, type RunEvent } from './run-view.ts';

export type DecisionListOptions = {
  limit: number;
  /** Position of the last DecisionRequested of the previous page (newest first). */
  before: string | null;
  status?: 'final' | 'pending_approval' | undefined;
  agent?: string | undefined;
  /** Only runs this principal asked for (agents see their own). */
  requestedBy?: string | undefined;
};

/**
 * A tenant's decisions, newest first, paged by the position of their DecisionRequested event. Each run's
 * state is folded with the same `evolve` as every other reader, from its events in the tenant's scope.
 * `pending_approval` means "not final yet" (it includes runs whose evaluation is not recorded yet).
 */
export async function listDecisions(db: Db, tenantId: string, opts: DecisionListOptions): Promise<{ items: DecisionSummary[]; next: string | null }> {
  const res = await withTenant(db, tenantId, (c) => c.query<{ position: string; recorded_at: Date; events: RunEvent[] }>(
    `SELECT r.position, r.recorded_at,
            (SELECT json_agg(json_build_object('type', e.type, 'data', e.data) ORDER BY e.stream_version)
               FROM events e WHERE e.stream_id = r.stream_id AND e.type IN ('DecisionRequested', 'PolicyEvaluated', 'DecisionFinalized')) AS events
       FROM events r
      WHERE r.tenant_id = $1 AND r.type = 'DecisionRequested'
        AND ($2::bigint IS NULL OR r.position < $2::bigint)
        AND ($3::text IS NULL OR r.data->'request'->'agent'->>'id' = $3)
        AND ($4::text IS NULL OR r.data->>'requested_by' = $4)
        AND ($5::text IS NULL OR ($5 = 'final') = EXISTS (SELECT 1 FROM events f WHERE f.stream_id = r.stream_id AND f.type = 'DecisionFinalized'))
      ORDER BY r.position DESC
      LIMIT $6`,
    [tenantId, opts.before, opts.agent ?? null, opts.requestedBy ?? null, opts.status ?? null, opts.limit + 1],
  ));
  const more = res.rows.length > opts.limit;
  const rows = more ? res.rows.slice(0, opts.limit) : res.rows;
  const items: DecisionSummary[] = [];
  for (const row of rows) {
    const view = foldRun(row.events);
    if (!view) continue;
    items.push({
      decision_id: view.decision_id,
      agent_id: view.agent_id,
      tool: view.action.tool,
      operation: view.action.operation ?? null,
      decision: view.decision,
      status: view.status,
      reason: view.reason,
      requested_by: view.requested_by,
      requested_at: row.recorded_at.toISOString(),
    });
  }
  return { items, next: more ? rows[rows.length - 1]!.position : null };
}
