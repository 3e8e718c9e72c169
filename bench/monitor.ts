// Monitor benchmark: the monitor's filtered page (one policy + one decision + the last 24 h, 50 items) through
// listDecisions (tenant-scoped transaction, row-level security, the projection's indexes, items built with
// reason codes) against a bare indexed SELECT of the same rows and columns from a plain table of the same
// shape (a copy of the projection: no row-level security, one index that fits the query exactly), with
// 1,000,000 decisions in the projection. Also the projection's build time from the log, in events/s.
//
// How the data is made (a fresh test database, nothing else touched):
// 1. The log: LOG_RUNS runs written directly with SQL generate_series, 3 events each (DecisionRequested,
//    PolicyEvaluated, DecisionFinalized: the events the projection reads; hashes are placeholders, nothing here
//    verifies chains), with the projection's trigger disabled. countersign_monitor_rebuild() (the live
//    trigger's own function) then builds the projection from that log: its time gives events/s.
// 2. The rest of the 1,000,000 projection rows are generated directly into decision_monitor with
//    generate_series (the same columns the projection writes; its secondary indexes dropped for the load and
//    re-created from their own definitions, as read from pg_indexes), then VACUUM ANALYZE.
// Runs are spread evenly over the last 30 days across 4 tenants, 10 policies and 4 decisions, so the measured
// filter matches ~200 runs in its 24 h window. Writing 1,000,000 runs through the log instead takes ~40 min on
// the shared 2-core machine (3,000,000 events, each through the log's six indexes and row-level security).
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/monitor.ts [LOG_RUNS=100000] [TOTAL=1000000] [iterations=2000]
// Goal: p95 ours / bare <= 2x. Prints p50/p95/p99 of both, the ratios, and the build rate.
import pg from 'pg';
import { createPool } from '../services/events/db.ts';
import { listDecisions } from '../services/decisions/list-decisions.ts';
import { createTestDatabase } from '../test/int/harness.ts';

const LOG_RUNS = Number(process.argv[2] ?? 100_000);
const RUNS = Number(process.argv[3] ?? 1_000_000);
const ITERATIONS = Number(process.argv[4] ?? 2000);
const CHUNK = 25_000;
const DAYS = 30;

const database = await createTestDatabase();
const owner = new pg.Client({ connectionString: database.adminUrl });
await owner.connect();
const db = createPool(database.url, 4);

try {
  await owner.query(`SELECT set_config('countersign.system', 'bench', false)`);
  await owner.query('ALTER TABLE events DISABLE TRIGGER events_monitor');
  const genStart = performance.now();
  for (let from = 0; from < LOG_RUNS; from += CHUNK) {
    const to = Math.min(LOG_RUNS, from + CHUNK) - 1;
    await owner.query(
      `WITH r AS (
         SELECT i, 'bench' || (i % 4) AS tenant, 'p' || ((i / 4) % 10) AS policy,
                (ARRAY['ALLOW', 'DENY', 'REQUIRE_APPROVAL', 'ALLOW_WITH_CONSTRAINTS'])[1 + (i / 40) % 4] AS decision,
                now() - make_interval(secs => ($3::bigint - i) * ($4::double precision * 86400 / $3::bigint)) AS at,
                'dec_bench_' || i AS dec
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
      [from, to, RUNS, DAYS],
    );
    process.stdout.write(`\rlog: ${to + 1} runs`);
  }
  await owner.query('ALTER TABLE events ENABLE TRIGGER events_monitor');
  await owner.query('VACUUM ANALYZE events');
  const genSeconds = (performance.now() - genStart) / 1000;
  console.log(`\nlog written: ${LOG_RUNS} runs, ${LOG_RUNS * 3} events in ${genSeconds.toFixed(1)} s (generate_series, not measured against anything)`);

  const buildStart = performance.now();
  const built = await db.query<{ events_read: string; rows_projected: string }>('SELECT * FROM countersign_monitor_rebuild()');
  const buildSeconds = (performance.now() - buildStart) / 1000;
  const read = Number(built.rows[0]!.events_read);
  console.log(`projection built from the log: ${read} events, ${built.rows[0]!.rows_projected} rows in ${buildSeconds.toFixed(1)} s = ${Math.round(read / buildSeconds)} events/s (${Math.round(Number(built.rows[0]!.rows_projected) / buildSeconds)} runs/s)`);

  // The rest of the projection, generated directly (see the header), with the same distribution.
  const fillStart = performance.now();
  const indexes = (await owner.query<{ indexname: string; indexdef: string }>(
    `SELECT i.indexname, i.indexdef FROM pg_indexes i
      WHERE i.tablename = 'decision_monitor' AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)`)).rows;
  for (const ix of indexes) await owner.query(`DROP INDEX ${pg.escapeIdentifier(ix.indexname)}`);
  for (let from = LOG_RUNS; from < RUNS; from += 200_000) {
    const to = Math.min(RUNS, from + 200_000) - 1;
    await owner.query(
      `WITH r AS (
         SELECT i, 'bench' || (i % 4) AS tenant, 'p' || ((i / 4) % 10) AS policy,
                (ARRAY['ALLOW', 'DENY', 'REQUIRE_APPROVAL', 'ALLOW_WITH_CONSTRAINTS'])[1 + (i / 40) % 4] AS decision,
                now() - make_interval(secs => ($3::bigint - i) * ($4::double precision * 86400 / $3::bigint)) AS at,
                'dec_bench_' || i AS dec
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
      [from, to, RUNS, DAYS],
    );
    process.stdout.write(`\rprojection: ${to + 1} rows`);
  }
  for (const ix of indexes) await owner.query(ix.indexdef);
  await owner.query('VACUUM ANALYZE decision_monitor');
  const total = (await owner.query('SELECT count(*)::int AS n FROM decision_monitor')).rows[0].n as number;
  console.log(`\nprojection filled to ${total} rows in ${((performance.now() - fillStart) / 1000).toFixed(1)} s (generate_series, indexes re-created)`);

  // The reference: the same rows in a plain table, one index exactly for this query, no row-level security.
  const appRole = decodeURIComponent(new URL(database.url).username);
  await owner.query('CREATE TABLE plain_monitor AS SELECT * FROM decision_monitor');
  await owner.query('CREATE INDEX plain_monitor_q ON plain_monitor (tenant_id, policy_id, decision, requested_at DESC, seq DESC)');
  await owner.query('VACUUM ANALYZE plain_monitor');
  await owner.query(`GRANT SELECT ON plain_monitor TO ${pg.escapeIdentifier(appRole)}`);

  const tenant = 'bench1';
  const policy = 'p3';
  const decision = 'DENY' as const;
  const since = () => new Date(Date.now() - 86_400_000).toISOString();
  const COLUMNS = `m.decision_id, m.seq, to_char(m.requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at,
    m.run_id, m.requested_at, m.agent_id, m.requested_by, m.tool, m.operation, m.input_digest, m.input, m.status, m.decision, m.reason,
    m.matched_rule, m.matched_rules, m.snapshot_hash, m.finalized_via, m.decided_at, m.policy_id, m.policy_version`;
  const bare = async () => (await db.query<{ decision_id: string }>(
    `SELECT ${COLUMNS} FROM plain_monitor m
      WHERE m.tenant_id = $1 AND m.policy_id = $2 AND m.decision = $3 AND m.requested_at >= $4::timestamptz
      ORDER BY m.requested_at DESC, m.seq DESC LIMIT 51`, [tenant, policy, decision, since()])).rows.slice(0, 50).map((r) => r.decision_id);
  const ours = async () => (await listDecisions(db, tenant, { policyId: policy, decision, since: since(), limit: 50, after: null, withInput: true })).items.map((i) => i.decision_id);

  const a = await ours();
  const b = await bare();
  if (a.length === 0 || JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`the two queries disagree: ${a.length} vs ${b.length} rows`);
  const plan = await owner.query(`EXPLAIN SELECT * FROM decision_monitor m WHERE m.tenant_id = 'bench1' AND m.policy_id = 'p3' AND m.decision = 'DENY'
    AND m.requested_at >= now() - interval '1 day' ORDER BY m.requested_at DESC, m.seq DESC LIMIT 51`);
  console.log(`plan (projection): ${plan.rows.map((r: Record<string, string>) => r['QUERY PLAN']).join(' | ').replace(/\s+/g, ' ').slice(0, 300)}`);
  const inWindow = await owner.query(`SELECT count(*)::int AS n FROM decision_monitor WHERE tenant_id = 'bench1' AND policy_id = 'p3' AND decision = 'DENY' AND requested_at >= now() - interval '1 day'`);
  console.log(`rows matching the filter in the window: ${inWindow.rows[0].n}; page: ${a.length}`);

  const times: Record<'ours' | 'bare', number[]> = { ours: [], bare: [] };
  const one = async (name: 'ours' | 'bare') => {
    const t0 = performance.now();
    await (name === 'ours' ? ours() : bare());
    return performance.now() - t0;
  };
  for (let i = 0; i < 200; i++) { await one('ours'); await one('bare'); }
  for (let i = 0; i < ITERATIONS; i++) {
    // Interleaved, alternating which goes first, so load from the other helpers hits both alike.
    const order: Array<'ours' | 'bare'> = i % 2 === 0 ? ['ours', 'bare'] : ['bare', 'ours'];
    for (const name of order) times[name].push(await one(name));
  }
  const pct = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
  for (const p of [50, 95, 99]) {
    const o = pct(times.ours, p);
    const r = pct(times.bare, p);
    console.log(`p${p}: ours ${o.toFixed(3)} ms, bare SELECT ${r.toFixed(3)} ms, ratio ${(o / r).toFixed(2)}x${p === 95 ? ' (goal <= 2x)' : ''}`);
  }
} finally {
  await db.end();
  await owner.end();
  await database.drop();
}
