// Inbox API benchmark: GET /v1/approvals?limit=20 (HTTP, an approver's key: authentication, the inbox
// projection's page, the page's runs read in one query and folded, each round checked, the agent's history per
// round, JSON) with ROUNDS open rounds of the approver's group in the tenant, against a bare indexed SELECT of the
// same 20 rounds measured in the same run, interleaved:
//   bare page          the page's rows from a plain copy of the projection (no row-level security, one index that
//                      fits the query exactly), on a plain connection
//   bare page + events the same, joined with the page's events (everything the route folds), in one statement
// Also, once each: the route's parts in this process (projection query, events read, folds, histories, JSON size)
// and the selection the route made from the event log before the projection (the same page chosen by folding
// the tenant's open rounds in SQL), a few times, as the "before" of the query.
// The rounds are written straight into `events` (bench/lib/open-rounds.ts); no worker, publisher stopped.
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/approvals-inbox.ts [rounds=10000] [iterations=200]
import path from 'node:path';
import pg from 'pg';
import { insertOpenRounds } from './lib/open-rounds.ts';
import { openRoundsFor } from '../services/decisions/approval-inbox.ts';
import { agentHistories } from '../services/decisions/agent-history.ts';
import { foldRun, openRound, type RunEvent } from '../services/decisions/run-view.ts';
import { readStreams } from '../services/events/read-events.ts';
import { createPool, withTenant } from '../services/events/db.ts';
import { isKnownEventType } from '../schemas/events.ts';
import { api, ROOT, startTestStack } from '../test/int/harness.ts';

const ROUNDS = Number(process.argv[2] ?? 10_000);
const ITERATIONS = Number(process.argv[3] ?? 200);
const LIMIT = 20;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;
const ms = (x: number) => `${x.toFixed(2)} ms`;
const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
  const t = performance.now();
  const out = await fn();
  return [out, performance.now() - t];
};

const stack = await startTestStack({ COUNTERSIGN_RATE_LIMIT: '1000000' }, { workerEntry: path.join(ROOT, 'bench', 'lib', 'no-worker.mjs') });
const owner = new pg.Pool({ connectionString: stack.env['DATABASE_ADMIN_URL']!, max: 2, options: '-c countersign.system=bench' });
const app = createPool(stack.dbUrl, 2);
try {
  await stack.publisher.stop();
  const created = await api({ url: stack.url, key: stack.key }, 'POST', '/v1/principals', { name: 'alice', kind: 'person', roles: ['approver'], groups: ['finance'] });
  const key = created.body.api_key as string;
  const alice = { tenant_id: 'default', id: created.body.id as string, groups: ['finance'] };
  let t = performance.now();
  await insertOpenRounds(stack, 'default', ROUNDS, 'inbox-api-bench');
  process.stdout.write(`generated ${ROUNDS} open rounds (${ROUNDS * 3} events, through the triggers) in ${ms(performance.now() - t)}\n`);
  await owner.query('ANALYZE events');
  await owner.query('ANALYZE approval_inbox');
  await owner.query('ANALYZE approval_inbox_audience');
  const open = (await owner.query<{ n: number }>('SELECT count(*)::int AS n FROM approval_inbox')).rows[0]!.n;
  process.stdout.write(`inbox projection: ${open} open rounds\n`);

  // The reference table: the same rows, no row-level security, one index exactly for the query.
  await owner.query(`CREATE TABLE plain_inbox AS SELECT a.tenant_id, a.audience, a.deadline, a.seq, i.stream_id, i.decision_id, i.round
                       FROM approval_inbox_audience a JOIN approval_inbox i ON i.item_key = a.item_key`);
  await owner.query('CREATE INDEX plain_inbox_page ON plain_inbox (tenant_id, audience, deadline, seq)');
  await owner.query('VACUUM ANALYZE plain_inbox');
  const barePage = async () => (await owner.query<{ decision_id: string }>(
    `SELECT decision_id, stream_id, round, deadline FROM plain_inbox WHERE tenant_id = 'default' AND audience = 'group/finance' ORDER BY deadline, seq LIMIT ${LIMIT}`)).rows.map((r) => r.decision_id);
  const barePageEvents = async () => (await owner.query<{ decision_id: string; type: string }>(
    `WITH page AS (SELECT decision_id, stream_id, deadline, seq FROM plain_inbox WHERE tenant_id = 'default' AND audience = 'group/finance' ORDER BY deadline, seq LIMIT ${LIMIT})
     SELECT p.decision_id, e.type, e.data FROM page p JOIN events e ON e.stream_id = p.stream_id ORDER BY p.deadline, p.seq, e.stream_version`)).rows;
  let bytes = 0;
  const route = async () => {
    const res = await fetch(`${stack.url}/v1/approvals?limit=${LIMIT}`, { headers: { authorization: `Bearer ${key}` } });
    const text = await res.text();
    bytes = Buffer.byteLength(text);
    return (JSON.parse(text) as { items: Array<{ decision_id: string }> }).items.map((i) => i.decision_id);
  };

  const a = await route();
  const b = await barePage();
  if (a.length !== LIMIT || JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`the route and the bare SELECT disagree: ${JSON.stringify(a.slice(0, 3))} vs ${JSON.stringify(b.slice(0, 3))}`);
  const plan = await owner.query(`EXPLAIN SELECT i.stream_id FROM approval_inbox i WHERE i.item_key IN (SELECT x.item_key FROM unnest(ARRAY['group/finance']) AS g(audience)
    CROSS JOIN LATERAL (SELECT a.item_key FROM approval_inbox_audience a JOIN approval_inbox r ON r.item_key = a.item_key WHERE a.tenant_id = 'default' AND a.audience = g.audience
    AND r.kind <> 'activation_review' AND NOT ('x' = ANY (r.excluded)) AND NOT ('x' = ANY (r.answered)) ORDER BY a.deadline, a.seq LIMIT 28) x) ORDER BY i.deadline, i.seq LIMIT 28`);
  process.stdout.write(`plan (projection page): ${plan.rows.map((r: Record<string, string>) => r['QUERY PLAN']).join(' | ').replace(/\s+/g, ' ').slice(0, 400)}\n`);

  const times = { route: [] as number[], page: [] as number[], events: [] as number[] };
  for (let i = 0; i < 20; i++) { await route(); await barePage(); await barePageEvents(); } // warm-up
  for (let i = 0; i < ITERATIONS; i++) {
    times.route.push((await timed(route))[1]);
    times.page.push((await timed(barePage))[1]);
    times.events.push((await timed(barePageEvents))[1]);
  }
  const line = (name: string, xs: number[]) => `${name.padEnd(22)} p50 ${ms(pct(xs, 50))}  p95 ${ms(pct(xs, 95))}  p99 ${ms(pct(xs, 99))}`;
  process.stdout.write([
    line('GET /v1/approvals', times.route),
    line('bare page', times.page),
    line('bare page + events', times.events),
    `ratio route / bare page:          p50 ${(pct(times.route, 50) / pct(times.page, 50)).toFixed(1)}x  p95 ${(pct(times.route, 95) / pct(times.page, 95)).toFixed(1)}x`,
    `ratio route / bare page + events: p50 ${(pct(times.route, 50) / pct(times.events, 50)).toFixed(1)}x  p95 ${(pct(times.route, 95) / pct(times.events, 95)).toFixed(1)}x`,
    `response: ${LIMIT} items, ${bytes} bytes of JSON (${Math.round(bytes / LIMIT)} per item)`,
    '',
  ].join('\n'));

  // The route's parts, in this process, on the same database (median of 30).
  const parts = { select: [] as number[], read: [] as number[], fold: [] as number[], history: [] as number[] };
  for (let i = 0; i < 30; i++) {
    await withTenant(app, 'default', async (c) => {
      const [rows, select] = await timed(() => openRoundsFor(c, alice, LIMIT + 8));
      const [streams, read] = await timed(() => readStreams(c, rows.map((r) => r.stream_id)));
      t = performance.now();
      const views = rows.map((r) => foldRun((streams.get(r.stream_id) ?? []).filter((e) => isKnownEventType(e.type)).map((e) => ({ type: e.type, data: e.data }) as RunEvent)));
      for (const v of views) openRound(v);
      const fold = performance.now() - t;
      const [, history] = await timed(() => agentHistories(c, 'default', views.slice(0, LIMIT).flatMap((v) => (v ? [{ decision_id: v.decision_id, agent_id: v.agent_id, tool: v.action.tool }] : []))));
      parts.select.push(select); parts.read.push(read); parts.fold.push(fold); parts.history.push(history);
    });
  }
  process.stdout.write(`route parts (p50 of 30): projection page ${ms(pct(parts.select, 50))}, events of the page (one query) ${ms(pct(parts.read, 50))}, folds ${ms(pct(parts.fold, 50))}, agent histories (one query for ${LIMIT} runs) ${ms(pct(parts.history, 50))}\n`);

  // The selection as it was made from the event log before the projection (the same page), a few times.
  const before: number[] = [];
  for (let i = 0; i < 5; i++) {
    before.push((await timed(() => withTenant(app, 'default', (c) => c.query(
      `SELECT o.stream_id FROM (
         SELECT r.stream_id, (r.data->>'round')::int AS round, COALESCE(e.data->'groups', r.data->'groups') AS groups,
                COALESCE(e.data->>'deadline', r.data->>'deadline')::timestamptz AS deadline, r.data->>'requested_by' AS round_requested_by
           FROM events r
           LEFT JOIN LATERAL (SELECT x.data FROM events x WHERE x.stream_id = r.stream_id AND x.type = 'ApprovalEscalated'
                                AND x.stream_version > r.stream_version AND (x.data->>'round')::int = (r.data->>'round')::int
                              ORDER BY x.stream_version DESC LIMIT 1) e ON true
          WHERE r.tenant_id = $1 AND r.type = 'ApprovalRequested'
            AND NOT EXISTS (SELECT 1 FROM events f WHERE f.stream_id = r.stream_id AND f.stream_version > r.stream_version
                              AND (f.type IN ('DecisionFinalized', 'OverrideGranted', 'OverrideDenied') OR (f.type = 'ApprovalExpired' AND NOT f.data ? 'requirements')))
       ) o
       WHERE o.groups ?| $2::text[] AND o.round_requested_by <> $3
         AND NOT EXISTS (SELECT 1 FROM events q WHERE q.stream_id = o.stream_id AND q.type = 'DecisionRequested' AND q.data->>'requested_by' = $3)
         AND NOT EXISTS (SELECT 1 FROM events a WHERE a.stream_id = o.stream_id AND a.type IN ('ApprovalGranted', 'ApprovalRejected')
                           AND (a.data->>'round')::int = o.round AND a.data->>'approver_id' = $3)
       ORDER BY o.deadline, o.stream_id LIMIT $4`,
      ['default', alice.groups, alice.id, LIMIT],
    ))))[1]);
  }
  process.stdout.write(`the page chosen from the event log (the query before the projection): p50 ${ms(pct(before, 50))} (all: ${before.map((x) => x.toFixed(0)).join(', ')}); the projection's page: p50 ${ms(pct(parts.select, 50))}\n`);
} finally {
  await app.end();
  await owner.end();
  await stack.stop();
}
