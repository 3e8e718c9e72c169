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
import { insertOpenRounds } from './lib/open-rounds.ts';
import { api, ROOT, startTestStack } from '../test/int/harness.ts';

const ROUNDS = Number(process.argv[2] ?? 10_000);
const MEASUREMENTS = Number(process.argv[3] ?? 7);
const SMALL = 10;
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
if (!CHROMIUM) throw new Error('no Chromium (apt-get install chromium)');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;

/** Where the time to the first card went, as the page measured it (ms from navigation start; bytes of the inbox's JSON). */
type FirstCard = { first: number; requested: number; answered: number; bytes: number };

/** Navigates to the inbox; answers the page's own time from navigation start to the first card, and the inbox request's timing. */
async function firstCard(page: Page): Promise<FirstCard> {
  await page.goto('/decisions');
  await page.getByRole('heading', { name: 'Decisions' }).waitFor();
  await page.goto('/inbox', { waitUntil: 'commit' });
  // A function, not a string: the page's CSP (no unsafe-eval) refuses a predicate given as a string.
  type Entry = { name: string; startTime: number; responseEnd: number; encodedBodySize: number };
  type PageGlobals = { document: { querySelector: (s: string) => unknown }; performance: { now: () => number; getEntriesByType: (t: string) => Entry[] } };
  const handle = await page.waitForFunction(() => {
    const g = globalThis as unknown as PageGlobals;
    if (!g.document.querySelector('li.card')) return null;
    const first = g.performance.now();
    // The inbox's own request (GET /v1/approvals?limit=…), not the stream nor an answer.
    const req = g.performance.getEntriesByType('resource').find((e) => /\/v1\/approvals\?/.test(e.name));
    return { first, requested: req?.startTime ?? 0, answered: req?.responseEnd ?? 0, bytes: req?.encodedBodySize ?? 0 };
  }, undefined, { polling: 'raf', timeout: 60_000 });
  return (await handle.jsonValue())!;
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

    const big: FirstCard[] = [];
    const ref: FirstCard[] = [];
    const apiBig: number[] = [];
    for (let i = 0; i < MEASUREMENTS; i++) {
      big.push(await firstCard(pages.big));
      ref.push(await firstCard(pages.small));
      t = performance.now();
      const res = await fetch(`${stack.url}/v1/approvals?limit=20`, { headers: { authorization: `Bearer ${bigKey}` } });
      await res.arrayBuffer();
      apiBig.push(performance.now() - t);
    }
    const m = median(big.map((x) => x.first));
    const mRef = median(ref.map((x) => x.first));
    const split = (xs: FirstCard[]) => `app start to the inbox request ${fmt(median(xs.map((x) => x.requested)))}, the request ${fmt(median(xs.map((x) => x.answered - x.requested)))} (${median(xs.map((x) => x.bytes))} bytes of JSON), response to first card (render) ${fmt(median(xs.map((x) => x.first - x.answered)))}`;
    process.stdout.write([
      `inbox first card, ${ROUNDS} open rounds: median ${fmt(m)} (all: ${big.map((x) => x.first.toFixed(0)).join(', ')}) — goal < 1000 ms: ${m < 1000 ? 'met' : 'NOT met'}`,
      `  where it went (medians): ${split(big)}`,
      `reference, ${SMALL} open rounds:        median ${fmt(mRef)} (all: ${ref.map((x) => x.first.toFixed(0)).join(', ')})`,
      `  where it went (medians): ${split(ref)}`,
      `ratio 10k / ${SMALL}: ${(m / mRef).toFixed(2)}x`,
      `GET /v1/approvals?limit=20 alone (${ROUNDS} rounds): median ${fmt(median(apiBig))}; page overhead beyond it ${fmt(m - median(apiBig))}`,
      '',
    ].join('\n'));
  } finally {
    await browser.close();
    await stack.stop();
  }
}

await main();
