// Console inbox benchmark, measured in Debian's Chromium (playwright-core) against a whole test stack:
// an approver whose tenant has 10,000 open approval rounds (of its group) navigates to /inbox; the time from
// navigation start to the first round card on screen is read in the page (performance.now() when the first
// card exists). Goal: under 1 s.
// Reference, in the same run and interleaved: the same page for an approver of a tenant with 10 open rounds
// (ratio = 10k / 10 shows what the 10,000 cost), and the bare API call the page makes (GET /v1/approvals).
//
// The rounds are generated efficiently, not through Temporal: each run's first events (DecisionRequested,
// PolicyEvaluated: REQUIRE_APPROVAL by the example policy's big-refunds rule) and its ApprovalRequested are built
// and hash-chained offline (services/audit/synthetic-runs.ts, storeOffline) and INSERTed straight into the events
// table in batches: the tables the inbox reads, with the rows the workflow would have written. The publisher is
// stopped first so it does not ship 30,000 events to Kafka while we measure, and no worker runs (none is needed).
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/console-inbox.ts [rounds] [measurements]
import { existsSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import type { NewEvent, StoredEvent } from '../schemas/events.ts';
import { exampleSnapshot, firstRunEvents, storeOffline, syntheticDecisionId } from '../services/audit/synthetic-runs.ts';
import { runEventId, runStreamId } from '../services/decisions/ids.ts';
import { loadOrCreateKeyring } from '../services/receipts/keyring.ts';
import { sha256Digest } from '../services/receipts/canonical.ts';
import { withTenant } from '../services/events/db.ts';
import { api, ROOT, startTestStack, type TestStack } from '../test/int/harness.ts';

const ROUNDS = Number(process.argv[2] ?? 10_000);
const MEASUREMENTS = Number(process.argv[3] ?? 7);
const SMALL = 10;
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
if (!CHROMIUM) throw new Error('no Chromium (apt-get install chromium)');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;

/** Inserts `n` open rounds for group `finance` into a tenant, as the decision workflow would have written them. */
async function insertOpenRounds(stack: TestStack, tenantId: string, n: number, tag: string): Promise<void> {
  const keyring = await loadOrCreateKeyring(stack.env['COUNTERSIGN_KEYS_DIR']!);
  const { snapshot, policies } = exampleSnapshot();
  const now = new Date();
  const rows: StoredEvent[] = [];
  const flush = async () => {
    if (rows.length === 0) return;
    const batch = rows.splice(0, rows.length).map(({ position: _p, ...e }) => e);
    await withTenant(stack.db, tenantId, (c) => c.query(
      `INSERT INTO events (stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash)
       SELECT stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash
         FROM jsonb_to_recordset($1::jsonb) AS x(stream_id text, stream_version int, event_id text, type text, schema_version int, tenant_id text,
                                                 data jsonb, metadata jsonb, recorded_at timestamptz, prev_hash text, hash text)`,
      [JSON.stringify(batch)],
    ));
  };
  for (let i = 0; i < n; i++) {
    const decisionId = syntheticDecisionId(tag, i);
    const request = { agent: { id: `agent-${i % 7}` }, action: { tool: 'payment_tool', operation: 'Refund', args: { order: `A-${i}` } }, context: { amount: 600 + i }, policy_rules: [] };
    const first = firstRunEvents({ decisionId, tenantId, request, snapshot, policies, now, keyring });
    const evaluation = (first[1]!.data as { evaluation: { decision: string; snapshot_hash: string } }).evaluation;
    if (evaluation.decision !== 'REQUIRE_APPROVAL') throw new Error(`run ${i} is ${evaluation.decision}, not REQUIRE_APPROVAL`);
    const round: NewEvent = {
      type: 'ApprovalRequested',
      eventId: runEventId(decisionId, 3),
      data: {
        round: 1, kind: 'approval', groups: ['finance'], quorum: 1,
        // Deadlines spread over the next hours, so "soonest first" has work to do.
        deadline: new Date(now.getTime() + 3_600_000 + ((i * 7919) % n) * 1000).toISOString(),
        escalate_to: [], level_timeout_sec: 3600, on_timeout: 'DENY', requested_by: 'synthetic',
        args_digest: sha256Digest(request.action.args), snapshot_hash: evaluation.snapshot_hash,
      },
      metadata: { correlation_id: decisionId },
    };
    rows.push(...storeOffline(runStreamId(decisionId), tenantId, [...first, round], null, now, () => '0'));
    if (rows.length >= 3000) await flush();
  }
  await flush();
}

/** Navigates to the inbox; answers the page's own time from navigation start to the first card. */
async function firstCard(page: Page): Promise<number> {
  await page.goto('/decisions');
  await page.getByRole('heading', { name: 'Decisions' }).waitFor();
  await page.goto('/inbox', { waitUntil: 'commit' });
  // A function, not a string: the page's CSP (no unsafe-eval) refuses a predicate given as a string.
  type PageGlobals = { document: { querySelector: (s: string) => unknown }; performance: { now: () => number } };
  const handle = await page.waitForFunction(() => {
    const g = globalThis as unknown as PageGlobals;
    return g.document.querySelector('li.card') ? g.performance.now() : 0;
  }, undefined, { polling: 'raf', timeout: 60_000 });
  return Number(await handle.jsonValue());
}

async function main(): Promise<void> {
  // No workflow runs in this bench (the rounds are written directly), so no worker either: a stand-in answers the
  // harness's wait for one (bench/lib/no-worker.mjs).
  const stack = await startTestStack({ COUNTERSIGN_RATE_LIMIT: '1000000' }, { workerEntry: path.join(ROOT, 'bench', 'lib', 'no-worker.mjs') });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    await stack.publisher.stop();
    const small = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id: 'small', name: 'Small inbox' });
    const approver = async (url: string, adminKey: string) => (await api({ url, key: adminKey }, 'POST', '/v1/principals', { name: 'alice', kind: 'person', roles: ['approver'], groups: ['finance'] })).body.api_key as string;
    const bigKey = await approver(stack.url, stack.key);
    const smallKey = await approver(stack.url, small.body.admin_api_key);
    let t = performance.now();
    await insertOpenRounds(stack, 'default', ROUNDS, 'inbox-bench');
    await insertOpenRounds(stack, 'small', SMALL, 'inbox-bench-small');
    process.stdout.write(`generated ${ROUNDS} + ${SMALL} open rounds (${ROUNDS * 3 + SMALL * 3} events, inserted directly) in ${fmt(performance.now() - t)}\n`);
    await stack.db.query('ANALYZE events');

    const pages: Record<'big' | 'small', Page> = {} as never;
    for (const [name, key] of [['big', bigKey], ['small', smallKey]] as const) {
      const context = await browser.newContext({ baseURL: stack.url, viewport: { width: 1100, height: 800 } });
      const page = await context.newPage();
      await page.goto('/');
      await page.getByLabel('API key').fill(key);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('button', { name: 'Sign out' }).waitFor();
      pages[name] = page;
      await firstCard(page); // warm-up: assets cached, connections open
    }
    const count = await pages.big.locator('li.card').count();
    process.stdout.write(`first page of the big inbox: ${count} cards\n`);

    const big: number[] = [];
    const ref: number[] = [];
    const apiBig: number[] = [];
    for (let i = 0; i < MEASUREMENTS; i++) {
      big.push(await firstCard(pages.big));
      ref.push(await firstCard(pages.small));
      t = performance.now();
      const res = await fetch(`${stack.url}/v1/approvals?limit=20`, { headers: { authorization: `Bearer ${bigKey}` } });
      await res.arrayBuffer();
      apiBig.push(performance.now() - t);
    }
    const m = median(big);
    process.stdout.write([
      `inbox first card, ${ROUNDS} open rounds: median ${fmt(m)} (all: ${big.map((x) => x.toFixed(0)).join(', ')}) — goal < 1000 ms: ${m < 1000 ? 'met' : 'NOT met'}`,
      `reference, ${SMALL} open rounds:        median ${fmt(median(ref))} (all: ${ref.map((x) => x.toFixed(0)).join(', ')})`,
      `ratio 10k / ${SMALL}: ${(m / median(ref)).toFixed(2)}x`,
      `GET /v1/approvals?limit=20 alone (${ROUNDS} rounds): median ${fmt(median(apiBig))}; page overhead beyond it ${fmt(m - median(apiBig))}`,
      '',
    ].join('\n'));
  } finally {
    await browser.close();
    await stack.stop();
  }
}

await main();
