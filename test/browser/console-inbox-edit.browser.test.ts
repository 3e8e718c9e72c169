import { existsSync, mkdirSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type TestStack } from '../int/harness.ts';
import { shot, signInWithKey, SHOTS } from './console-session.ts';

/**
 * The inbox's approve with edit, checklist and live updates, in Debian's Chromium against a whole test stack:
 * an edit that counts (the agent's waiting long-poll returns the edited arguments), an edit refused as looser
 * shown on its card, JSON that does not parse never sent, a rule that forbids edits offering none, the
 * judgment rules' checklist shown as text, and a round closed by another approver leaving the inbox, over the
 * approvals stream when the API has it and by polling when it does not (forced here with a 404).
 */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
const CI = Boolean(process.env['CI']);

let stack: TestStack;
let browser: Browser;
let bot: { id: string; key: string };
let alice: { id: string; key: string };
let bob: { id: string; key: string };

const DESKTOP = { width: 1100, height: 800 };
const PHONE = { width: 390, height: 844 };
const HOSTILE = 'Reject refunds whose memo names a vendor not in the lookup result <img src=x onerror="document.title=1"> **urgent**';

const POLICY = `apiVersion: countersign/v1
kind: Policy
metadata: { id: refund-edits, name: Approvers may lower refunds, domain: finance }
scope: { level: tenant }
rules:
  - name: small-refunds
    match: { tool: refund_tool }
    condition: action.args.amount <= 500
    decision: ALLOW
    reason: small refunds go through
  - name: big-refunds
    match: { tool: refund_tool }
    condition: action.args.amount > 500 && action.args.amount <= 5000
    decision: REQUIRE_APPROVAL
    reason: refunds above 500 need finance
    constraints: { max_runtime_sec: 600 }
    approval: { approvers: [finance], quorum: 1, timeout: 2h, on_timeout: DENY }
  - name: wipes
    match: { tool: wipe_tool }
    decision: REQUIRE_APPROVAL
    reason: wipes need finance, as asked
    approval: { approvers: [finance], quorum: 1, timeout: 2h, allow_edits: false }
  - name: pair-refunds
    match: { tool: pair_tool }
    condition: action.args.amount > 500
    decision: REQUIRE_APPROVAL
    reason: pair refunds need two of finance
    approval: { approvers: [finance], quorum: 2, timeout: 2h }
  - name: small-pairs
    match: { tool: pair_tool }
    condition: action.args.amount <= 500
    decision: ALLOW
`;

const JUDGMENT = `apiVersion: countersign/v1
kind: Policy
metadata: { id: vendor-judgment, name: Vendor judgment, domain: finance }
scope: { level: tenant }
rules:
  - type: nl
    text: ${JSON.stringify(HOSTILE)}
    applies_to: { tool: vendor_tool }
    approval: { approvers: [finance], timeout: 1h }
`;

async function ask(action: Record<string, unknown>): Promise<string> {
  const res = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'edit-bot' }, action, idempotency_key: randomUUID() });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.status).toBe('pending_approval');
  const id = res.body.decision_id as string;
  // Answers need the round's events.
  await eventually(async () => ((await stack.db.query('SELECT 1 FROM events WHERE stream_id = $1 AND type = $2', [`run/${id}`, 'ApprovalRequested'])).rowCount ? true : undefined), 60_000, `${id}'s round`);
  return id;
}

const card = (page: Page, id: string) => page.locator(`li[data-decision="${id}"]`);

/**
 * Whether this API serves the approvals stream to the page's session: the status of its answer, read by the
 * page itself (its cookie), then the connection dropped; 0 when no answer came within the wait.
 */
async function streamStatus(page: Page): Promise<number> {
  type G = { fetch: (u: string, i: { signal: unknown }) => Promise<{ status: number }>; AbortController: new () => { signal: unknown; abort: () => void }; setTimeout: (f: () => void, ms: number) => void };
  return page.evaluate(async () => {
    const g = globalThis as unknown as G;
    const abort = new g.AbortController();
    const status = await Promise.race([
      g.fetch('/v1/approvals/stream', { signal: abort.signal }).then((r) => r.status, () => 0),
      new Promise<number>((resolve) => g.setTimeout(() => resolve(0), 20_000)),
    ]);
    abort.abort();
    return status;
  });
}

/** Signs in, with the approvals stream refused (404) when `noStream`, and records the page's stream requests. */
async function signIn(key: string, opts: { noStream?: boolean; phone?: boolean } = {}): Promise<{ context: BrowserContext; page: Page; streamRequests: string[] }> {
  const { context, page } = await signInWithKey(browser, stack.url, key, opts.phone ? { viewport: PHONE, mobile: true } : { viewport: DESKTOP });
  const streamRequests: string[] = [];
  page.on('request', (r) => { if (r.url().endsWith('/v1/approvals/stream')) streamRequests.push(r.resourceType()); });
  if (opts.noStream) {
    await context.route('**/v1/approvals/stream', (route) => route.fulfill({ status: 404, contentType: 'application/problem+json', body: JSON.stringify({ title: 'Not Found', status: 404 }) }));
  }
  // The sign-in landed on the inbox before the route above: load it again, so the page starts with it.
  await page.goto('/inbox');
  await page.getByRole('heading', { name: 'Approvals waiting for you' }).waitFor();
  return { context, page, streamRequests };
}

describe.runIf(CHROMIUM || CI)('the inbox: approve with edit, checklist, live updates (real browser)', () => {
  beforeAll(async () => {
    if (!CHROMIUM) throw new Error('no Chromium on this machine (apt-get install chromium): under CI the browser tests must run');
    mkdirSync(SHOTS, { recursive: true });
    stack = await startTestStack();
    bot = await addPrincipal(stack, { name: 'edit-bot', kind: 'agent', roles: ['agent'] });
    alice = await addPrincipal(stack, { name: 'alice', roles: ['approver'], groups: ['finance'] });
    bob = await addPrincipal(stack, { name: 'bob', roles: ['approver'], groups: ['finance'] });
    await activateYaml(stack, POLICY);
    await activateYaml(stack, JUDGMENT);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it('approve with edit: JSON that does not parse is never sent, a looser edit is refused on the card, a tighter one counts and the waiting agent gets it', async () => {
    const order = `R-${randomUUID().slice(0, 6)}`;
    const id = await ask({ tool: 'refund_tool', operation: 'Refund', args: { order, amount: 900 } });
    const { context, page } = await signIn(alice.key);
    const c = card(page, id);
    await c.waitFor({ timeout: 30_000 });
    await c.getByRole('button', { name: 'Edit arguments…' }).click();
    const box = c.getByLabel('Edited arguments (JSON)');
    expect(JSON.parse(await box.inputValue())).toEqual({ order, amount: 900 });
    const submit = c.getByRole('button', { name: 'Approve edited arguments' });
    const problem = c.getByTestId('edit-problem');

    // Not JSON, not an object: said at once, and the button stays off (nothing is sent).
    const sent: string[] = [];
    page.on('request', (r) => { if (r.method() === 'POST' && r.url().includes(`/v1/decisions/${id}/approvals`)) sent.push(r.postData() ?? ''); });
    await box.fill('{ "order": "x", "amount": ');
    await expect.poll(() => problem.textContent()).toMatch(/^not JSON: /);
    expect(await submit.isDisabled()).toBe(true);
    expect(await box.getAttribute('aria-invalid')).toBe('true');
    await box.fill('[1, 2]');
    await expect.poll(() => problem.textContent()).toContain('must be a JSON object');
    expect(await submit.isDisabled()).toBe(true);

    // Looser than what was asked (500 is an ALLOW): the server refuses, the card says why and stays.
    await box.fill(JSON.stringify({ order, amount: 400 }));
    await submit.click();
    await expect.poll(() => problem.textContent(), { timeout: 30_000 }).toMatch(/refused, not counted: .*would be ALLOW by rule small-refunds, looser than the REQUIRE_APPROVAL/);
    expect(sent).toHaveLength(1);
    expect(JSON.parse(sent[0]!)).toMatchObject({ verdict: 'approve', channel: 'dashboard', edited_args: { order, amount: 400 } });
    await shot(page, 'inbox-edit-refused');
    expect((await api({ url: stack.url, key: bot.key }, 'GET', `/v1/decisions/${id}`)).body.status).toBe('pending_approval');

    // Tighter (650 still needs finance): it counts, and the waiting agent's long-poll returns the edited arguments.
    await box.fill(JSON.stringify({ order, amount: 650 }, null, 2));
    expect(await problem.textContent()).toBe('');
    await shot(page, 'inbox-edit-form');
    const waiting = api({ url: stack.url, key: bot.key }, 'GET', `/v1/decisions/${id}?wait=90`);
    await submit.click();
    await page.getByText(/your approve of the edited arguments counted/).waitFor({ timeout: 30_000 });
    const final = await waiting;
    expect(final.status).toBe(200);
    expect(final.body).toMatchObject({ status: 'final', decision: 'ALLOW_WITH_CONSTRAINTS', edited_args: { order, amount: 650 }, constraints: { max_runtime_sec: 600 } });
    await c.waitFor({ state: 'detached', timeout: 15_000 });
    await shot(page, 'inbox-edit-counted');
    await context.close();
  }, 180_000);

  it('a rule that forbids edits offers none; a checklist is shown as text, with the approver context', async () => {
    const wipe = await ask({ tool: 'wipe_tool', operation: 'Wipe', args: { paths: ['/a', '/b'] } });
    const vendor = await ask({ tool: 'vendor_tool', operation: 'Pay', args: { memo: 'pay Acme' } });
    const { context, page } = await signIn(alice.key);
    const w = card(page, wipe);
    await w.waitFor({ timeout: 30_000 });
    expect(await w.getByRole('button', { name: 'Approve', exact: true }).count()).toBe(1);
    expect(await w.getByRole('button', { name: 'Edit arguments…' }).count()).toBe(0);
    expect(await w.getByTestId('checklist').count()).toBe(0);

    const v = card(page, vendor);
    await v.waitFor({ timeout: 30_000 });
    const list = v.getByTestId('checklist');
    expect(await list.textContent()).toContain(HOSTILE);
    expect(await list.textContent()).toContain('vendor-judgment v1');
    // Policy text is untrusted: shown as text, never as markup.
    expect(await page.locator('.checklist img').count()).toBe(0);
    expect(await page.title()).not.toBe('1');
    expect(await v.getByTestId('history').textContent()).toMatch(/no earlier vendor_tool decisions of edit-bot/);
    await shot(page, 'inbox-checklist');

    // A refund asked before is in the history of the next one (still pending: its round is open).
    await ask({ tool: 'refund_tool', operation: 'Restock', args: { order: 'R-hist-1', amount: 600 } });
    const next = await ask({ tool: 'refund_tool', operation: 'Refund', args: { order: 'R-hist-2', amount: 700 } });
    const r = card(page, next);
    await r.waitFor({ timeout: 30_000 });
    const history = await r.getByTestId('history').textContent();
    expect(history).toMatch(/Restock\s+pending/);
    expect(await r.textContent()).toContain('max_runtime_sec');
    await context.close();
  }, 180_000);

  it('a round being approved with edited arguments shows them, and Approve approves those', async () => {
    const order = `P-${randomUUID().slice(0, 6)}`;
    const id = await ask({ tool: 'pair_tool', operation: 'Refund', args: { order, amount: 900 } });
    const edited = { order, amount: 700 };
    expect((await api({ url: stack.url, key: bob.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve', edited_args: edited })).body).toMatchObject({ counted: true, round_status: 'open' });
    const { context, page } = await signIn(alice.key);
    const c = card(page, id);
    await c.waitFor({ timeout: 30_000 });
    const shown = await c.getByTestId('edited-args').textContent();
    expect(shown).toContain(bob.id);
    expect(shown).toContain('"amount": 700');
    expect(await c.textContent()).toContain('1 of 2 approvals');
    await shot(page, 'inbox-edit-pending');
    const waiting = api({ url: stack.url, key: bot.key }, 'GET', `/v1/decisions/${id}?wait=90`);
    await c.getByRole('button', { name: 'Approve', exact: true }).click();
    await page.getByText(/your approve of the edited arguments counted: round 1 is approved/).waitFor({ timeout: 30_000 });
    expect((await waiting).body).toMatchObject({ status: 'final', edited_args: edited });
    await context.close();
  }, 120_000);

  it('on a phone, the edit form fits the screen', async () => {
    const id = await ask({ tool: 'refund_tool', operation: 'Refund', args: { order: 'R-phone', amount: 1200, note: 'a long note that wraps on a narrow screen rather than widening the page' } });
    const { context, page } = await signIn(alice.key, { phone: true });
    const c = card(page, id);
    await c.waitFor({ timeout: 30_000 });
    await c.getByRole('button', { name: 'Edit arguments…' }).click();
    await c.getByLabel('Edited arguments (JSON)').waitFor();
    expect(await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth')).toBeLessThanOrEqual(0);
    await shot(page, 'inbox-edit-phone');
    await c.getByRole('button', { name: 'Cancel edit' }).click();
    await context.close();
  }, 120_000);

  for (const noStream of [false, true]) {
    it(noStream
      ? 'without the approvals stream (404), the inbox polls: a round another approver closes leaves it, and the page says why'
      : 'a round another approver closes leaves the inbox, over the approvals stream when the API serves it (polling otherwise)', async () => {
      const id = await ask({ tool: 'refund_tool', operation: 'Refund', args: { order: `R-live-${String(noStream)}`, amount: 800 } });
      const { context, page, streamRequests } = await signIn(alice.key, { noStream });
      const expected = noStream || (await streamStatus(page)) !== 200 ? 'polling' : 'live';
      const status = page.getByTestId('inbox-status');
      await expect.poll(() => status.getAttribute('data-mode'), { timeout: 15_000 }).toBe(expected);
      // The page asked for the stream through EventSource (allowed by the CSP's connect-src), whatever the answer.
      expect(streamRequests).toContain('eventsource');
      await expect.poll(() => status.textContent(), { timeout: 15_000 }).toContain(expected === 'live' ? 'live updates' : 'updates every 3 s');
      const c = card(page, id);
      await c.waitFor({ timeout: 30_000 });

      expect((await api({ url: stack.url, key: bob.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve', comment: 'done by bob' })).status).toBe(200);
      await c.waitFor({ state: 'detached', timeout: 20_000 });
      await page.getByText(new RegExp(`${id}: closed elsewhere: the run is final, ALLOW_WITH_CONSTRAINTS`)).waitFor({ timeout: 15_000 });
      expect(await status.getAttribute('data-mode')).toBe(expected);
      await shot(page, noStream ? 'inbox-closed-elsewhere-polling' : 'inbox-closed-elsewhere-live');
      await context.close();
    }, 120_000);
  }
});
