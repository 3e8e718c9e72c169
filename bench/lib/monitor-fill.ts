// Fills the decision_monitor projection of a test database for the monitor benches (bench/monitor.ts measures
// the API's query, bench/console-monitor.ts the console's page). Nothing else touched:
// 1. The log: `logRuns` runs written directly with SQL generate_series, 3 events each (DecisionRequested,
//    PolicyEvaluated, DecisionFinalized: the events the projection reads; hashes are placeholders, nothing here
//    verifies chains), with the projection's trigger disabled. countersign_monitor_rebuild() (the live
//    trigger's own function) then builds the projection from that log: its time gives events/s.
// 2. The rest of the `total` projection rows are generated directly into decision_monitor with
//    generate_series (the same columns the projection writes; its secondary indexes dropped for the load and
//    re-created from their own definitions, as read from pg_indexes), then VACUUM ANALYZE.
// Runs are spread evenly over the last `days` days across `tenants` (run i in tenants[i % n]), 10 policies
// (p0..p9) and 4 decisions, so with 4 tenants, 1,000,000 runs and 30 days one policy + one decision in one
// tenant matches ~200 runs in a 24 h window.
import pg from 'pg';

const CHUNK = 25_000;

export type MonitorFill = { logRuns: number; total: number; days: number; tenants: string[]; db: pg.Pool };

/** Writes the log and fills the projection; prints each step; answers the projection's row count. */
export async function fillMonitor(owner: pg.Client, o: MonitorFill): Promise<number> {
  await owner.query(`SELECT set_config('countersign.system', 'bench', false)`);
  await owner.query('ALTER TABLE events DISABLE TRIGGER events_monitor');
  const genStart = performance.now();
  for (let from = 0; from < o.logRuns; from += CHUNK) {
    const to = Math.min(o.logRuns, from + CHUNK) - 1;
    await owner.query(
      `WITH r AS (
         SELECT i, ($5::text[])[1 + i % cardinality($5::text[])] AS tenant, 'p' || ((i / 4) % 10) AS policy,
                (ARRAY['ALLOW', 'DENY', 'REQUIRE_APPROVAL', 'ALLOW_WITH_CONSTRAINTS'])[1 + (i / 40) % 4] AS decision,
                now() - make_interval(secs => ($3::bigint - i) * ($4::double precision * 86400 / $3::bigint)) AS at,
                'dec_' || md5('bench/' || i) AS dec
           FROM generate_series($1::bigint, $2::bigint) AS i)
       INSERT INTO events (stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash)
       SELECT 'run/' || r.dec, v.n, r.dec || '/' || v.n, v.type, 1, r.tenant, v.data,
              jsonb_build_object('workflow_id', 'decision/' || r.tenant || '/' || r.dec), r.at + make_interval(secs => (v.n - 1) * 0.001),
              CASE WHEN v.n = 1 THEN NULL ELSE 'sha256:prev' END, 'sha256:bench'
         FROM r, LATERAL (VALUES
           (1, 'DecisionRequested', jsonb_build_object(
              'decision_id', r.dec, 'tenant_id', r.tenant, 'requested_by', 'prn_bot_' || (r.i % 50), 'idempotency_key', NULL, 'args_digest', NULL,
              'request_digest', 'sha256:' || md5(r.dec) || md5(r.dec),
              'request', jsonb_build_object('agent', jsonb_build_object('id', 'bot-' || (r.i % 50)),
                                            'action', jsonb_build_object('tool', 'tool_' || (r.i % 20), 'operation', 'Op' || (r.i % 3), 'args', jsonb_build_object('order', 'A-' || r.i)),
                                            'context', jsonb_build_object('amount', r.i % 1000)))),
           (2, 'PolicyEvaluated', jsonb_build_object('policies', '[]'::jsonb, 'evaluation', jsonb_build_object(
              'decision', r.decision, 'reason', 'rule of ' || r.policy, 'matched_rule', 'rule-' || r.decision,
              'matched_rules', jsonb_build_array(jsonb_build_object('policy_id', r.policy, 'version', 1, 'rule', 'rule-' || r.decision, 'decision', r.decision)),
              'constraints', '{}'::jsonb, 'snapshot_hash', 'sha256:snap'))),
           (3, 'DecisionFinalized', jsonb_build_object('decision', CASE r.decision WHEN 'REQUIRE_APPROVAL' THEN 'ALLOW' ELSE r.decision END,
              'reason', 'rule of ' || r.policy, 'matched_rule', 'rule-' || r.decision, 'constraints', '{}'::jsonb,
              'via', CASE r.decision WHEN 'REQUIRE_APPROVAL' THEN 'approval' ELSE 'policy' END))
         ) AS v(n, type, data)
        ORDER BY r.i, v.n`,
      [from, to, o.total, o.days, o.tenants],
    );
    process.stdout.write(`\rlog: ${to + 1} runs`);
  }
  await owner.query('ALTER TABLE events ENABLE TRIGGER events_monitor');
  await owner.query('VACUUM ANALYZE events');
  const genSeconds = (performance.now() - genStart) / 1000;
  console.log(`\nlog written: ${o.logRuns} runs, ${o.logRuns * 3} events in ${genSeconds.toFixed(1)} s (generate_series, not measured against anything)`);

  const buildStart = performance.now();
  const built = await o.db.query<{ events_read: string; rows_projected: string }>('SELECT * FROM countersign_monitor_rebuild()');
  const buildSeconds = (performance.now() - buildStart) / 1000;
  const read = Number(built.rows[0]!.events_read);
  console.log(`projection built from the log: ${read} events, ${built.rows[0]!.rows_projected} rows in ${buildSeconds.toFixed(1)} s = ${Math.round(read / buildSeconds)} events/s (${Math.round(Number(built.rows[0]!.rows_projected) / buildSeconds)} runs/s)`);

  // The rest of the projection, generated directly (see the header), with the same distribution.
  const fillStart = performance.now();
  const indexes = (await owner.query<{ indexname: string; indexdef: string }>(
    `SELECT i.indexname, i.indexdef FROM pg_indexes i
      WHERE i.tablename = 'decision_monitor' AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)`)).rows;
  for (const ix of indexes) await owner.query(`DROP INDEX ${pg.escapeIdentifier(ix.indexname)}`);
  for (let from = o.logRuns; from < o.total; from += 200_000) {
    const to = Math.min(o.total, from + 200_000) - 1;
    await owner.query(
      `WITH r AS (
         SELECT i, ($5::text[])[1 + i % cardinality($5::text[])] AS tenant, 'p' || ((i / 4) % 10) AS policy,
                (ARRAY['ALLOW', 'DENY', 'REQUIRE_APPROVAL', 'ALLOW_WITH_CONSTRAINTS'])[1 + (i / 40) % 4] AS decision,
                now() - make_interval(secs => ($3::bigint - i) * ($4::double precision * 86400 / $3::bigint)) AS at,
                'dec_' || md5('bench/' || i) AS dec
           FROM generate_series($1::bigint, $2::bigint) AS i)
       INSERT INTO decision_monitor (stream_id, tenant_id, decision_id, seq, run_id, requested_at, agent_id, requested_by, tool, operation,
                                     input_digest, input, status, decision, reason, matched_rule, matched_rules, snapshot_hash,
                                     finalized_via, decided_at, last_position)
       SELECT 'run/' || r.dec, r.tenant, r.dec, 1000000000 + r.i, 'decision/' || r.tenant || '/' || r.dec, r.at, 'bot-' || (r.i % 50), 'prn_bot_' || (r.i % 50),
              'tool_' || (r.i % 20), 'Op' || (r.i % 3), 'sha256:' || md5(r.dec) || md5(r.dec),
              jsonb_build_object('agent', jsonb_build_object('id', 'bot-' || (r.i % 50)),
                                 'action', jsonb_build_object('tool', 'tool_' || (r.i % 20), 'operation', 'Op' || (r.i % 3), 'args', jsonb_build_object('order', 'A-' || r.i)),
                                 'context', jsonb_build_object('amount', r.i % 1000)),
              'final', CASE r.decision WHEN 'REQUIRE_APPROVAL' THEN 'ALLOW' ELSE r.decision END, 'rule of ' || r.policy, 'rule-' || r.decision,
              jsonb_build_array(jsonb_build_object('policy_id', r.policy, 'version', 1, 'rule', 'rule-' || r.decision, 'decision', r.decision)),
              'sha256:snap', CASE r.decision WHEN 'REQUIRE_APPROVAL' THEN 'approval' ELSE 'policy' END, r.at + interval '2 milliseconds', 1000000000 + r.i
         FROM r`,
      [from, to, o.total, o.days, o.tenants],
    );
    process.stdout.write(`\rprojection: ${to + 1} rows`);
  }
  for (const ix of indexes) await owner.query(ix.indexdef);
  await owner.query('VACUUM ANALYZE decision_monitor');
  const total = (await owner.query('SELECT count(*)::int AS n FROM decision_monitor')).rows[0].n as number;
  console.log(`\nprojection filled to ${total} rows in ${((performance.now() - fillStart) / 1000).toFixed(1)} s (generate_series, indexes re-created)`);

  return total;
}
