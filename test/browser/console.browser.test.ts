import { existsSync, mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { addPrincipal, api, eventually, startTestStack, type TestStack } from '../int/harness.ts';
import { shot, signInWithKey, SHOTS } from './console-session.ts';

/** Debian's Chromium (apt-get install chromium): no browser download. Under CI its absence fails the file. */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
const CI = Boolean(process.env['CI']);

let stack: TestStack;
let browser: Browser;
const people: Record<string, { id: string; key: string }> = {};
let bot: { id: string; key: string };
let tenantB: { decision: string };

const signIn = (key: string) => signInWithKey(browser, stack.url, key);


async function askFor(body: unknown, key = bot.key): Promise<{ decision_id: string; status: string; decision: string; matched_rules: Array<{ policy_id: string; version: number }> }> {
  const res = await api({ url: stack.url, key }, 'POST', '/v1/decisions', body);
  expect(res.status).toBe(200);
  return res.body;
}

const refund = (amount: number) => ({ agent: { id: 'pay-bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount } });

describe.runIf(CHROMIUM || CI)('console in a real browser', () => {
  beforeAll(async () => {
    if (!CHROMIUM) throw new Error('no Chromium on this machine (apt-get install chromium): under CI the browser tests must run');
    mkdirSync(SHOTS, { recursive: true });
    stack = await startTestStack();
    people['alice'] = await addPrincipal(stack, { name: 'alice', roles: ['approver'], groups: ['finance'] });
    people['bob'] = await addPrincipal(stack, { name: 'bob', roles: ['approver'], groups: ['finance'] });
    people['ann'] = await addPrincipal(stack, { name: 'ann', roles: ['author'] });
    bot = await addPrincipal(stack, { name: 'pay-bot', kind: 'agent', roles: ['agent'] });
    const b = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id: 'tenant-b', name: 'Bravo' });
    expect(b.status).toBe(201);
    const botB = await api({ url: stack.url, key: b.body.admin_api_key }, 'POST', '/v1/principals', { name: 'pay-bot', kind: 'agent', roles: ['agent'], groups: [] });
    const decB = await api({ url: stack.url, key: botB.body.api_key }, 'POST', '/v1/decisions', { agent: { id: 'pay-bot' }, action: { tool: 'search_tool' } });
    tenantB = { decision: decB.body.decision_id ?? 'dec_00000000000000000000000000000000' };
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it('serves the console with a strict CSP and no inline script', async () => {
    const res = await fetch(`${stack.url}/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/https?:\/\//);
  });

  it('an approver signs in, sees the pending refund, approves it, and the waiting agent hears ALLOW; a second approver sees it closed', async () => {
    const context = await browser.newContext({ baseURL: stack.url, viewport: { width: 1100, height: 800 } });
    const signInPage = await context.newPage();
    await signInPage.goto('/');
    await signInPage.getByLabel('API key').waitFor();
    await shot(signInPage, 'sign-in');
    await context.close();

    const { context: alice, page } = await signIn(people['alice']!.key);
    // The key is nowhere in the browser's storage: only the HttpOnly session cookie.
    // Runs in the page (the test's own types have no DOM).
    const stored = await page.evaluate<string>('JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie })');
    expect(stored).not.toContain(people['alice']!.key.slice(0, 12));
    const cookies = await alice.cookies();
    expect(cookies.find((c) => c.name === 'cs_session')).toMatchObject({ httpOnly: true, sameSite: 'Strict' });

    const pending = await askFor(refund(900));
    expect(pending.status).toBe('pending_approval');
    const waiting = api({ url: stack.url, key: bot.key }, 'GET', `/v1/decisions/${pending.decision_id}?wait=90`);
    const card = page.locator(`li[data-decision="${pending.decision_id}"]`);
    await card.waitFor({ timeout: 30_000 });
    await expect(card.textContent()).resolves.toContain('big-refunds');
    await expect(card.textContent()).resolves.toContain('finance');
    await shot(page, 'inbox');
    await card.getByLabel('Comment').fill('checked the invoice');
    await card.getByRole('button', { name: 'Approve' }).click();
    await page.getByText(/your approve counted/).waitFor();
    const answered = await waiting;
    expect(answered.body).toMatchObject({ decision_id: pending.decision_id, decision: 'ALLOW', status: 'final' });
    await card.waitFor({ state: 'detached', timeout: 15_000 });

    // Bob's inbox never shows the closed round; answering it anyway is refused with the reason.
    const { context: bobContext, page: bobPage } = await signIn(people['bob']!.key);
    await bobPage.getByText('Nothing waits for your answer.').waitFor({ timeout: 15_000 });
    const session = await bobPage.evaluate(async () => (await fetch('/v1/console/session')).json() as Promise<{ csrf_token: string }>);
    const late = await bobPage.evaluate(async ([id, csrf]) => {
      const r = await fetch(`/v1/decisions/${id}/approvals`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf! }, body: JSON.stringify({ verdict: 'approve' }) });
      return { status: r.status, body: await r.json() as { detail: string } };
    }, [pending.decision_id, session.csrf_token]);
    expect(late.status).toBe(409);
    expect(late.body.detail).toBeTruthy();

    // The run's timeline: every event in order and the receipt verified.
    await bobPage.goto(`/decisions/${pending.decision_id}`);
    await bobPage.getByTestId('receipt').getByText(/signature verified/).waitFor({ timeout: 30_000 });
    const types = await bobPage.locator('.timeline .type').allTextContents();
    expect(types[0]).toBe('DecisionRequested');
    expect(types).toContain('DecisionFinalized');
    await shot(bobPage, 'run-timeline');

    await bobPage.goto('/decisions');
    await bobPage.getByLabel('Status').selectOption('final');
    await bobPage.locator(`a[href="/decisions/${pending.decision_id}"]`).waitFor();
    await shot(bobPage, 'decisions');
    await bobContext.close();
    await alice.close();
  });

  it('an answer that did not count shows the reason; an ended session returns to sign-in', async () => {
    const { context, page } = await signIn(people['alice']!.key);
    const pending = await askFor(refund(700));
    const card = page.locator(`li[data-decision="${pending.decision_id}"]`);
    await card.waitFor({ timeout: 30_000 });
    // Keep showing the round as it was (as if the next poll had not come yet) while bob closes it by the API.
    const stale = await page.evaluate(async () => (await fetch('/v1/approvals?limit=100')).text());
    await page.route('**/v1/approvals?*', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: stale }));
    const bob = await api({ url: stack.url, key: people['bob']!.key }, 'POST', `/v1/decisions/${pending.decision_id}/approvals`, { verdict: 'approve' });
    expect(bob.status).toBe(200);
    await card.getByRole('button', { name: 'Reject' }).click();
    const refusal = page.getByText(/your answer did not count/);
    await refusal.waitFor();
    expect(await refusal.textContent()).toContain(pending.decision_id);
    await shot(page, 'inbox-refused');
    await page.unroute('**/v1/approvals?*');

    await stack.db.query(`UPDATE console_sessions SET last_seen_at = now() - interval '2 hours' WHERE principal_id = $1`, [people['alice']!.id]);
    await page.goto('/decisions');
    await page.getByLabel('API key').waitFor();
    await context.close();
  });

  it('an author saves a draft with an error shown at its line, fixes it, activates, and the next decision carries the new version', async () => {
    const { context, page } = await signIn(people['ann']!.key);
    await page.goto('/policies/new');
    const bad = ['apiVersion: countersign/v1', 'kind: Policy', 'metadata:', '  id: console-wire', '  name: Wires', 'scope: { level: tenant }', 'rules:', '  - name: deny-wire', '    match: { tool: wire_tool }', '    decision: MAYBE', ''].join('\n');
    await page.getByLabel('Policy (YAML)').fill(bad);
    await page.getByRole('button', { name: 'Save draft' }).click();
    const problem = page.getByRole('list', { name: 'Errors' });
    await problem.waitFor();
    expect(await problem.textContent()).toMatch(/line 10:/);
    await shot(page, 'policy-editor-error');
    await page.getByLabel('Policy (YAML)').fill(bad.replace('MAYBE', 'DENY'));
    await page.getByRole('button', { name: 'Save draft' }).click();
    await page.waitForURL('**/policies/console-wire');
    await page.getByRole('button', { name: 'Validate' }).click();
    await page.getByText(/^Validation:/).waitFor();
    await page.getByRole('button', { name: 'Activate' }).click();
    await expect.poll(() => page.getByTestId('policy-status').textContent(), { timeout: 15_000 }).toBe('active');
    await shot(page, 'policy-editor');
    const next = await eventually(async () => {
      const d = await askFor({ agent: { id: 'pay-bot' }, action: { tool: 'wire_tool' } });
      return d.matched_rules.some((m) => m.policy_id === 'console-wire') ? d : undefined;
    }, 30_000, 'a decision under the new policy');
    expect(next.decision).toBe('DENY');
    expect(next.matched_rules.find((m) => m.policy_id === 'console-wire')!.version).toBe(1);
    await page.goto('/policies');
    await page.getByRole('link', { name: 'console-wire' }).waitFor();
    await shot(page, 'policies');
    await context.close();
  });

  it('an approver sees no activate or save button in the policy editor', async () => {
    const { context, page } = await signIn(people['alice']!.key);
    await page.goto('/policies/example');
    await page.getByTestId('policy-status').waitFor();
    expect(await page.getByRole('button', { name: 'Activate' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Save draft' }).count()).toBe(0);
    expect(await page.getByRole('link', { name: 'New policy' }).count()).toBe(0);
    await context.close();
  });

  it("a session of tenant A cannot read tenant B's decision by URL", async () => {
    expect(tenantB.decision).toMatch(/^dec_/);
    const { context, page } = await signIn(people['alice']!.key);
    await page.goto(`/decisions/${tenantB.decision}`);
    await page.getByRole('alert').waitFor();
    expect(await page.getByRole('alert').textContent()).toMatch(/not found/);
    const res = await page.evaluate(async (id) => (await fetch(`/v1/decisions/${id}`)).status, tenantB.decision);
    expect(res).toBe(404);
    await context.close();
  });
});
