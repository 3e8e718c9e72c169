import type { DecisionSummary } from '../../schemas/api.ts';
import type { Decision, MatchedRule } from '../../schemas/decision.ts';
import { withTenant, type Db } from '../events/db.ts';
import { reasonFields } from './reason-code.ts';

/** Where the previous page ended: its last item's (requested_at to the microsecond, seq). */
export type MonitorCursor = { t: string; s: string };

export type DecisionFilters = {
  status?: 'final' | 'pending_approval' | undefined;
  agent?: string | undefined;
  decision?: Decision | undefined;
  policyId?: string | undefined;
  policyVersion?: number | undefined;
  rule?: string | undefined;
  tool?: string | undefined;
  operation?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  /** Only runs this principal asked for (agents see their own). */
  requestedBy?: string | undefined;
};

export type DecisionListOptions = DecisionFilters & {
  limit: number;
  after: MonitorCursor | null;
  /** Whether items carry the request itself (the caller's role may see it); the digest is always there. */
  withInput: boolean;
};

type MonitorRow = {
  decision_id: string;
  seq: string;
  cursor_at: string;
  run_id: string;
  requested_at: Date;
  agent_id: string;
  requested_by: string;
  tool: string;
  operation: string | null;
  input_digest: string;
  input: unknown;
  status: 'requested' | 'pending_approval' | 'final';
  decision: Decision | null;
  reason: string;
  matched_rule: string | null;
  matched_rules: MatchedRule[];
  snapshot_hash: string | null;
  finalized_via: string | null;
  decided_at: Date | null;
  policy_id: string | null;
  policy_version: number | null;
};

/**
 * The WHERE clause of a filtered list: fixed SQL fragments, each with its own bind parameter, so no value a
 * caller sends is ever part of the statement's text. The tenant condition always comes first; row-level
 * security (withTenant) enforces it again.
 */
export function monitorWhere(tenantId: string, f: DecisionFilters, after: MonitorCursor | null): { sql: string; params: unknown[] } {
  const params: unknown[] = [tenantId];
  const where = ['m.tenant_id = $1'];
  const add = (fragment: (n: string) => string, value: unknown) => {
    params.push(value);
    where.push(fragment(`$${params.length}`));
  };
  if (f.status === 'final') where.push(`m.status = 'final'`);
  if (f.status === 'pending_approval') where.push(`m.status <> 'final'`);
  if (f.agent !== undefined) add((n) => `m.agent_id = ${n}`, f.agent);
  if (f.decision !== undefined) add((n) => `m.decision = ${n}`, f.decision);
  if (f.policyId !== undefined) add((n) => `m.policy_id = ${n}`, f.policyId);
  if (f.policyVersion !== undefined) add((n) => `m.policy_version = ${n}::integer`, f.policyVersion);
  if (f.rule !== undefined) add((n) => `m.matched_rule = ${n}`, f.rule);
  if (f.tool !== undefined) add((n) => `m.tool = ${n}`, f.tool);
  if (f.operation !== undefined) add((n) => `m.operation = ${n}`, f.operation);
  if (f.since !== undefined) add((n) => `m.requested_at >= ${n}::timestamptz`, f.since);
  if (f.until !== undefined) add((n) => `m.requested_at < ${n}::timestamptz`, f.until);
  if (f.requestedBy !== undefined) add((n) => `m.requested_by = ${n}`, f.requestedBy);
  if (after) {
    params.push(after.t, after.s);
    where.push(`(m.requested_at, m.seq) < ($${params.length - 1}::timestamptz, $${params.length}::bigint)`);
  }
  return { sql: where.join(' AND '), params };
}

/**
 * A tenant's decisions from the monitor projection (table decision_monitor, migration 0024), newest first by
 * (requested_at, seq), paged by a keyset cursor, so a page costs one index range read however deep it is.
 * The projection is written in the same transaction as the events it reads, so a decision is listed as soon
 * as it is recorded. `pending_approval` means "not final yet" (it includes runs whose evaluation is not
 * recorded yet). `reason_code` is derived here with the same function as the decision result.
 */
export async function listDecisions(db: Db, tenantId: string, opts: DecisionListOptions): Promise<{ items: DecisionSummary[]; next: MonitorCursor | null }> {
  const { sql, params } = monitorWhere(tenantId, opts, opts.after);
  params.push(opts.limit + 1);
  const res = await withTenant(db, tenantId, (c) => c.query<MonitorRow>(
    `SELECT m.decision_id, m.seq, to_char(m.requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at,
            m.run_id, m.requested_at, m.agent_id, m.requested_by, m.tool, m.operation, m.input_digest,
            ${opts.withInput ? 'm.input' : 'NULL::jsonb AS input'}, m.status, m.decision, m.reason, m.matched_rule, m.matched_rules,
            m.snapshot_hash, m.finalized_via, m.decided_at, m.policy_id, m.policy_version
       FROM decision_monitor m
      WHERE ${sql}
      ORDER BY m.requested_at DESC, m.seq DESC
      LIMIT $${params.length}`,
    params,
  ));
  const more = res.rows.length > opts.limit;
  const rows = more ? res.rows.slice(0, opts.limit) : res.rows;
  const items = rows.map((row) => summaryOf(row, opts.withInput));
  const last = rows[rows.length - 1];
  return { items, next: more && last ? { t: last.cursor_at, s: last.seq } : null };
}

function summaryOf(row: MonitorRow, withInput: boolean): DecisionSummary {
  const { reason_code } = reasonFields({ decision: row.decision, status: row.status, matched_rule: row.matched_rule, matched_rules: row.matched_rules, finalized_via: row.finalized_via });
  return {
    decision_id: row.decision_id,
    agent_id: row.agent_id,
    tool: row.tool,
    operation: row.operation,
    decision: row.decision,
    status: row.status,
    reason: row.reason,
    requested_by: row.requested_by,
    requested_at: row.requested_at.toISOString(),
    // Before the evaluation is recorded nothing has decided yet: no code.
    ...(row.decision === null ? {} : { reason_code }),
    matched_rule: row.matched_rule,
    policy_id: row.policy_id,
    policy_version: row.policy_version,
    matched_rules: row.matched_rules,
    snapshot_hash: row.snapshot_hash,
    decided_at: row.decided_at ? row.decided_at.toISOString() : null,
    run_id: row.run_id,
    input_digest: row.input_digest,
    ...(withInput ? { input: row.input } : {}),
  };
}
