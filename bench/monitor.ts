// Monitor benchmark: the monitor's filtered page (one policy + one decision + the last 24 h, 50 items) through
// listDecisions (tenant-scoped transaction, row-level security, the projection's indexes, items built with
// reason codes) against a bare indexed SELECT of the same rows and columns from a plain table of the same
// shape (a copy of the projection: no row-level security, one index that fits the query exactly), with
// 1,000,000 decisions in the projection. Also the projection's build time from the log, in events/s.
//
// The data (a fresh test database, nothing else touched) is made by bench/lib/monitor-fill.ts: LOG_RUNS runs
// through the log and the projection's own rebuild (its events/s printed), the rest of the 1,000,000 rows
// generated into the projection, spread over 4 tenants, 10 policies and 4 decisions, so the measured filter
// matches ~200 runs in its 24 h window. Writing 1,000,000 runs through the log instead takes ~40 min on
// the shared 2-core machine (3,000,000 events, each through the log's six indexes and row-level security).
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/monitor.ts [LOG_RUNS=100000] [TOTAL=1000000] [iterations=2000]
// Goal: p95 ours / bare <= 2x. Prints p50/p95/p99 of both, the ratios, and the build rate.
import pg from 'pg';
import { createPool } from '../services/events/db.ts';
import { fillMonitor } from './lib/monitor-fill.ts';
import { listDecisions } from '../services/decisions/list-decisions.ts';
import { createTestDatabase } from '../test/int/harness.ts';

const LOG_RUNS = Number(process.argv[2] ?? 100_000);
const RUNS = Number(process.argv[3] ?? 1_000_000);
const ITERATIONS = Number(process.argv[4] ?? 2000);
const DAYS = 30;

const database = await createTestDatabase();
const owner = new pg.Client({ connectionString: database.adminUrl });
await owner.connect();
const db = createPool(database.url, 4);

try {
  await fillMonitor(owner, { logRuns: LOG_RUNS, total: RUNS, days: DAYS, tenants: ['bench0', 'bench1', 'bench2', 'bench3'], db });

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
