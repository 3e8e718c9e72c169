import type { DecisionSummary } from '../../schemas/api.ts';
import type { Decision, MatchedRule } from '../../schemas/decision.ts';
import { CountersignError } from '../errors.ts';
import { isConnectionError, type Db } from '../events/db.ts';
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

/** The filters as countersign_monitor_page reads them: the projection's column names, absent when not given. */
function filterJson(f: DecisionFilters): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  const set = (key: string, v: string | number | undefined) => {
    if (v !== undefined) out[key] = v;
  };
  set('status', f.status);
  set('agent_id', f.agent);
  set('decision', f.decision);
  set('policy_id', f.policyId);
  set('policy_version', f.policyVersion);
  set('matched_rule', f.rule);
  set('tool', f.tool);
  set('operation', f.operation);
  set('since', f.since);
  set('until', f.until);
  set('requested_by', f.requestedBy);
  return out;
}

/** Migration 0024: the page in one statement, which sets the tenant scope for row-level security itself. */
const PAGE = {
  name: 'countersign_monitor_page',
  text: 'SELECT * FROM countersign_monitor_page($1, $2::jsonb, $3::timestamptz, $4::bigint, $5, $6)',
};

/**
 * A tenant's decisions from the monitor projection (table decision_monitor, migration 0024), newest first by
 * (requested_at, seq), paged by a keyset cursor, so a page costs one index range read however deep it is.
 * One statement (countersign_monitor_page), which scopes the transaction to the tenant as withTenant does and
 * filters by tenant itself too. The projection is written in the same transaction as the events it reads, so
 * a decision is listed as soon as it is recorded. `pending_approval` means "not final yet" (it includes runs
 * whose evaluation is not recorded yet). `reason_code` is derived here with the same function as the result.
 */
export async function listDecisions(db: Db, tenantId: string, opts: DecisionListOptions): Promise<{ items: DecisionSummary[]; next: MonitorCursor | null }> {
  if (!tenantId) throw new Error('listDecisions needs a tenant id');
  let res;
  try {
    res = await db.query<MonitorRow>({ ...PAGE, values: [tenantId, JSON.stringify(filterJson(opts)), opts.after?.t ?? null, opts.after?.s ?? null, opts.limit + 1, opts.withInput] });
  } catch (err) {
    if (isConnectionError(err)) throw CountersignError.dependency('postgres', err);
    throw err;
  }
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
