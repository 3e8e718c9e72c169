import type { Queryable } from '../events/db.ts';
import { runStreamId } from './ids.ts';

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

/**
 * The agent's last decisions for the same tool before this run, newest first: what it asked, what it got, and
 * what it reported. Read from the tenant's own event log (the caller's transaction is tenant-scoped), so an
 * approver never sees another tenant's runs.
 */
export async function agentHistory(c: Queryable, tenantId: string, decisionId: string, agentId: string, tool: string, limit = HISTORY_LENGTH): Promise<HistoryEntry[]> {
  const res = await c.query<{ decision_id: string; asked_at: Date; operation: string | null; decision: string | null; via: string | null; outcome: 'succeeded' | 'failed' | null }>(
    `SELECT r.data->>'decision_id' AS decision_id, r.recorded_at AS asked_at, r.data->'request'->'action'->>'operation' AS operation,
            f.data->>'decision' AS decision, f.data->>'via' AS via, o.data->>'status' AS outcome
       FROM events r
       LEFT JOIN LATERAL (SELECT x.data FROM events x WHERE x.stream_id = r.stream_id AND x.type = 'DecisionFinalized' ORDER BY x.stream_version DESC LIMIT 1) f ON true
       LEFT JOIN LATERAL (SELECT x.data FROM events x WHERE x.stream_id = r.stream_id AND x.type = 'OutcomeReported' ORDER BY x.stream_version LIMIT 1) o ON true
      WHERE r.tenant_id = $1 AND r.type = 'DecisionRequested'
        AND r.data->'request'->'agent'->>'id' = $2 AND r.data->'request'->'action'->>'tool' = $3
        AND r.position < (SELECT s.position FROM events s WHERE s.stream_id = $4 AND s.type = 'DecisionRequested')
      ORDER BY r.position DESC
      LIMIT $5`,
    [tenantId, agentId, tool, runStreamId(decisionId), limit],
  );
  return res.rows.map((r) => ({ decision_id: r.decision_id, asked_at: r.asked_at.toISOString(), operation: r.operation, decision: r.decision, finalized_via: r.via, outcome: r.outcome }));
}
