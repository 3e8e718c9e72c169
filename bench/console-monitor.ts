// Console monitor benchmark, measured in Debian's Chromium (playwright-core) against a whole test stack with
// 1,000,000 decisions in the decision_monitor projection: a signed-in auditor navigates to the Decisions page
// filtered by policy + decision + the last 24 h (/decisions?decision=DENY&policy_id=p3&since=…, the address a
// link or a reload gives); the time from navigation start to the first row on screen is read in the page
// (performance.now() when the first row exists). Goal: under 1 s.
// References, in the same run and interleaved with it:
// - the same JSON fetched by the same page (fetch() of the exact /v1/decisions call the page makes, timed in the
//   browser): what the API costs the page; the difference is the page's own (document, script, session read,
//   render);
// - the same call from Node (Bearer key): the API alone, no browser;
// - the page unfiltered (/decisions: the tenant's newest 50 of its 250,000 runs).
//
// The data is made by bench/lib/monitor-fill.ts (LOG_RUNS runs through the log and the projection's own
// rebuild, the rest generated into the projection), spread over 4 tenants of which the stack's `default` is
// one, 10 policies and 4 decisions over 30 days, so the filter matches ~200 runs of the tenant in its 24 h.
// The publisher is stopped (nothing to ship) and no worker runs (no workflow is started).
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/console-monitor.ts [LOG_RUNS=100000] [TOTAL=1000000] [measurements=9]
import { existsSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { chromium, type Page } from 'playwright-core';
import { addPrincipal, ROOT, startTestStack } from '../test/int/harness.ts';
import { fillMonitor } from './lib/monitor-fill.ts';

const LOG_RUNS = Number(process.argv[2] ?? 100_000);
const TOTAL = Number(process.argv[3] ?? 1_000_000);
const MEASUREMENTS = Number(process.argv[4] ?? 9);
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
if (!CHROMIUM) throw new Error('no Chromium (apt-get install chromium)');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
const all = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');

type PageGlobals = {
  document: { querySelector: (s: string) => unknown };
  performance: { now: () => number };
  fetch: (url: string, init: { credentials: string }) => Promise<{ ok: boolean; json: () => Promise<{ items: unknown[] }> }>;
};

/** Navigates to `address`; answers the page's own time from navigation start to its first decision row. */
async function firstRow(page: Page, address: string): Promise<number> {
  await page.goto('/policies');
  await page.getByRole('heading', { name: 'Policies' }).waitFor();
  await page.goto(address, { waitUntil: 'commit' });
  // A function, not a string: the page's CSP (no unsafe-eval) refuses a predicate given as a string.
  const handle = await page.waitForFunction(() => {
    const g = globalThis as unknown as PageGlobals;
    return g.document.querySelector('table.list tbody tr[data-decision]') ? g.performance.now() : 0;
  }, undefined, { polling: 'raf', timeout: 60_000 });
  return Number(await handle.jsonValue());
}

/** The same JSON the page asks for, fetched and parsed by the page itself (its session cookie): ms and rows. */
async function fetchInPage(page: Page, apiPath: string): Promise<{ ms: number; rows: number }> {
  return page.evaluate(async (p) => {
    const g = globalThis as unknown as PageGlobals;
    const t0 = g.performance.now();
    const res = await g.fetch(p, { credentials: 'same-origin' });
    if (!res.ok) throw new Error(`in-page fetch of ${p} failed`);
    const body = await res.json();
    return { ms: g.performance.now() - t0, rows: body.items.length };
  }, apiPath);
}

async function main(): Promise<void> {
  const stack = await startTestStack({ COUNTERSIGN_RATE_LIMIT: '1000000' }, { workerEntry: path.join(ROOT, 'bench', 'lib', 'no-worker.mjs') });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const owner = new pg.Client({ connectionString: stack.env['DATABASE_ADMIN_URL'] });
  await owner.connect();
  try {
    await stack.publisher.stop();
    const rows = await fillMonitor(owner, { logRuns: LOG_RUNS, total: TOTAL, days: 30, tenants: ['bench0', 'default', 'bench2', 'bench3'], db: stack.db });
    const ava = await addPrincipal(stack, { name: 'ava', roles: ['auditor'] });

    const since = new Date(Date.now() - 86_400_000).toISOString();
    const search = `?decision=DENY&policy_id=p3&since=${encodeURIComponent(since)}`;
    const filtered = `/decisions${search}`;
    const apiPath = `/v1/decisions?limit=50&decision=DENY&policy_id=p3&since=${encodeURIComponent(since)}`;
    const inWindow = (await owner.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM decision_monitor WHERE tenant_id = 'default' AND policy_id = 'p3' AND decision = 'DENY' AND requested_at >= $1`, [since])).rows[0]!.n;
    process.stdout.write(`projection: ${rows} rows (${rows / 4} in the tenant); the filter matches ${inWindow} in its 24 h window\n`);

    const context = await browser.newContext({ baseURL: stack.url, viewport: { width: 1100, height: 800 } });
    const page = await context.newPage();
    await page.goto('/');
    await page.getByLabel('API key').fill(ava.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    // Warm-up: assets cached, connections open, the query's pages in Postgres's cache.
    await firstRow(page, filtered);
    await firstRow(page, '/decisions');
    const shown = await page.locator('table.list tbody tr[data-decision]').count();
    await firstRow(page, filtered);
    const filteredRows = await page.locator('table.list tbody tr[data-decision]').count();
    const verdicts = new Set(await page.locator('table.list tbody tr[data-decision] .verdict').allTextContents());
    process.stdout.write(`filtered page: ${filteredRows} rows (${[...verdicts].join(', ')}); unfiltered page: ${shown} rows\n`);
    if (filteredRows === 0 || [...verdicts].some((v) => v !== 'DENY')) throw new Error('the filtered page does not show the filtered rows');

    const times: Record<'page' | 'inPage' | 'node' | 'unfiltered', number[]> = { page: [], inPage: [], node: [], unfiltered: [] };
    for (let i = 0; i < MEASUREMENTS; i++) {
      times.page.push(await firstRow(page, filtered));
      times.inPage.push((await fetchInPage(page, apiPath)).ms);
      const t = performance.now();
      const res = await fetch(`${stack.url}${apiPath}`, { headers: { authorization: `Bearer ${ava.key}` } });
      await res.json();
      times.node.push(performance.now() - t);
      times.unfiltered.push(await firstRow(page, '/decisions'));
    }
    const m = median(times.page);
    const api = median(times.inPage);
    process.stdout.write([
      `filtered Decisions page, first row after navigation (${rows} decisions): median ${fmt(m)} (all: ${all(times.page)}) — goal < 1000 ms: ${m < 1000 ? 'met' : 'NOT met'}`,
      `reference, the same JSON fetched by the page:    median ${fmt(api)} (all: ${all(times.inPage)}); the page's own share ${fmt(m - api)}, ratio page / API ${(m / api).toFixed(1)}x`,
      `reference, the same call from Node:              median ${fmt(median(times.node))} (all: ${all(times.node)})`,
      `unfiltered Decisions page, first row:            median ${fmt(median(times.unfiltered))} (all: ${all(times.unfiltered)})`,
      '',
    ].join('\n'));
    await context.close();
  } finally {
    await owner.end();
    await browser.close();
    await stack.stop();
  }
}

await main();
