import type { Queryable } from '../events/db.ts';

/** One earlier decision of the same agent for the same tool, as an approver sees it beside a round. */
export type HistoryEntry = {
  decision_id: string;
  asked_at: string;
  operation: string | null;
  /** The final decision, or null while the run is still pending. */
  decision: string | null;
  finalized_via: string | null;
  /** What the agent reported the tool did, or null when it reported nothing (yet). */
  outcome: 'succeeded' | 'failed' | null;
};

export const HISTORY_LENGTH = 5;

/** One run whose agent's history is asked for: the run, its agent and its tool. */
export type HistoryOf = { decision_id: string; agent_id: string; tool: string };

/**
 * For each run, the agent's last decisions for the same tool before that run, newest first: what it asked, what
 * it got, and what it reported. In one statement for every run of a page (one round trip, not one per run), from
 * the monitor projection (migration 0024: agent and tool are indexed columns there, where the log would have to
 * open every earlier request's JSON), with the outcome from the run's own events. Read in the caller's
 * tenant-scoped transaction, so an approver never sees another tenant's runs.
 */
export async function agentHistories(c: Queryable, tenantId: string, runs: readonly HistoryOf[], limit = HISTORY_LENGTH): Promise<Map<string, HistoryEntry[]>> {
  const out = new Map<string, HistoryEntry[]>(runs.map((r) => [r.decision_id, []]));
  if (runs.length === 0) return out;
  const res = await c.query<{ for_id: string; decision_id: string; asked_at: Date; operation: string | null; decision: string | null; via: string | null; outcome: 'succeeded' | 'failed' | null }>(
    `SELECT q.decision_id AS for_id, h.decision_id, h.requested_at AS asked_at, h.operation,
            CASE WHEN h.status = 'final' THEN h.decision END AS decision, h.finalized_via AS via, o.outcome
       FROM unnest($2::text[], $3::text[], $4::text[]) AS q(decision_id, agent_id, tool)
       JOIN decision_monitor me ON me.tenant_id = $1 AND me.decision_id = q.decision_id
       CROSS JOIN LATERAL (
         SELECT m.stream_id, m.decision_id, m.requested_at, m.operation, m.status, m.decision, m.finalized_via, m.seq
           FROM decision_monitor m
          -- A row comparison, so that the (tenant, agent, requested_at, seq) index starts at this run, not at the newest.
          WHERE m.tenant_id = $1 AND m.agent_id = q.agent_id AND (m.requested_at, m.seq) < (me.requested_at, me.seq) AND m.tool = q.tool
          ORDER BY m.requested_at DESC, m.seq DESC
          LIMIT $5) h
       LEFT JOIN LATERAL (SELECT x.data->>'status' AS outcome FROM events x WHERE x.stream_id = h.stream_id AND x.type = 'OutcomeReported'
                           ORDER BY x.stream_version LIMIT 1) o ON true
      ORDER BY q.decision_id, h.requested_at DESC, h.seq DESC`,
    [tenantId, runs.map((r) => r.decision_id), runs.map((r) => r.agent_id), runs.map((r) => r.tool), limit],
  );
  for (const r of res.rows) {
    out.get(r.for_id)?.push({ decision_id: r.decision_id, asked_at: r.asked_at.toISOString(), operation: r.operation, decision: r.decision, finalized_via: r.via, outcome: r.outcome });
  }
  return out;
}

