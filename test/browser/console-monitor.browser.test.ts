import { existsSync, mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type TestStack } from '../int/harness.ts';
import { shot, signInWithKey, SHOTS } from './console-session.ts';

/**
 * The console's monitor (seed 001's "Monitor filtered by policy id"): filters by decision, policy and the
 * rest, held in the address so a filtered view survives a reload and can be linked; cursor pages; each row
 * opens its run. Debian's Chromium, driven by playwright-core, against a whole test stack.
 */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
const CI = Boolean(process.env['CI']);

let stack: TestStack;
let browser: Browser;
let auditor: { id: string; key: string };
let bot: { id: string; key: string };
const runs: { block: string; allows: string[]; otherBlock: string } = { block: '', allows: [], otherBlock: '' };

const GUARD = `apiVersion: countersign/v1
kind: Policy
metadata: { id: monitor-guard, name: Guard wires, domain: finance }
scope: { level: tenant }
rules:
  - name: block-wires
    match: { tool: wire_tool }
    decision: DENY
    reason: no wires from agents
  - name: lookups
    match: { tool: lookup_tool }
    decision: ALLOW
    reason: lookups are read-only
`;

const OTHER = `apiVersion: countersign/v1
kind: Policy
metadata: { id: other-guard, name: Guard deletes, domain: ops }
scope: { level: tenant }
rules:
  - name: block-deletes
    match: { tool: delete_tool }
    decision: DENY
    reason: no deletes from agents
`;

const signIn = (key: string) => signInWithKey(browser, stack.url, key, { viewport: { width: 1300, height: 800 } });


async function ask(tool: string, want: string): Promise<string> {
  const res = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'pay-bot' }, action: { tool, operation: 'Run' } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.decision).toBe(want);
  return res.body.decision_id;
}

/** The decision ids the page's table shows now. */
const shown = (page: Page) => page.locator('table[aria-label="Decisions"] tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-decision') ?? '').sort());

describe.runIf(CHROMIUM || CI)('the console monitor in a real browser', () => {
  beforeAll(async () => {
    if (!CHROMIUM) throw new Error('no Chromium on this machine (apt-get install chromium): under CI the browser tests must run');
    mkdirSync(SHOTS, { recursive: true });
    stack = await startTestStack();
    auditor = await addPrincipal(stack, { name: 'audra', roles: ['auditor'] });
    bot = await addPrincipal(stack, { name: 'pay-bot', kind: 'agent', roles: ['agent'] });
    await activateYaml(stack, GUARD);
    await activateYaml(stack, OTHER);
    runs.allows.push(await ask('lookup_tool', 'ALLOW'));
    runs.block = await ask('wire_tool', 'DENY');
    runs.allows.push(await ask('lookup_tool', 'ALLOW'));
    runs.otherBlock = await ask('delete_tool', 'DENY');
    // The monitor reads a projection: wait until it holds all four before the browser looks.
    await eventually(async () => {
      const res = await api({ url: stack.url, key: auditor.key }, 'GET', '/v1/decisions?limit=200');
      const ids = new Set((res.body.items as Array<{ decision_id: string }>).map((d) => d.decision_id));
      return [runs.block, runs.otherBlock, ...runs.allows].every((id) => ids.has(id)) ? true : undefined;
    }, 30_000, 'the four decisions in the monitor');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it('filtering by policy id and DENY finds the block and not the allows, and a reload keeps the filter', async () => {
    const { context, page } = await signIn(auditor.key);
    await page.goto('/decisions');
    await expect.poll(() => shown(page), { timeout: 15_000 }).toEqual([runs.block, runs.otherBlock, ...runs.allows].sort());

    await page.getByLabel('Policy id').fill('monitor-guard');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(() => shown(page), { timeout: 15_000 }).toEqual([runs.block, ...runs.allows].sort());
    await page.getByLabel('Decision', { exact: true }).selectOption('DENY');
    await expect.poll(() => shown(page), { timeout: 15_000 }).toEqual([runs.block]);
    expect(new URL(page.url()).search).toBe('?decision=DENY&policy_id=monitor-guard');
    const row = page.locator(`tr[data-decision="${runs.block}"]`);
    const text = await row.textContent();
    for (const want of ['DENY', 'block-wires', 'monitor-guard v1', 'pay-bot', 'wire_tool · Run']) expect(text).toContain(want);
    await shot(page, 'monitor-filtered');

    // The address is the view: a reload (or the link sent to a colleague) shows the same filter and rows.
    await page.reload();
    await expect.poll(() => shown(page), { timeout: 15_000 }).toEqual([runs.block]);
    expect(await page.getByLabel('Policy id').inputValue()).toBe('monitor-guard');
    expect(await page.getByLabel('Decision', { exact: true }).inputValue()).toBe('DENY');

    // The row opens its run's timeline.
    await row.getByRole('link', { name: /./ }).last().click();
    await page.waitForURL(`**/decisions/${runs.block}`);
    await page.getByRole('heading', { name: new RegExp(runs.block) }).waitFor();
    await page.goBack();
    await expect.poll(() => shown(page), { timeout: 15_000 }).toEqual([runs.block]);
    await context.close();
  });

  it('pages through a filtered view with the cursor, and names what it could not use from the address', async () => {
    const { context, page } = await signIn(auditor.key);
    await page.goto('/decisions?policy_id=monitor-guard&limit=2');
    await expect.poll(async () => (await shown(page)).length, { timeout: 15_000 }).toBe(2);
    const first = await shown(page);
    await page.getByRole('button', { name: 'Next page' }).click();
    await expect.poll(async () => (await shown(page)).length, { timeout: 15_000 }).toBe(1);
    const second = await shown(page);
    expect([...first, ...second].sort()).toEqual([runs.block, ...runs.allows].sort());
    expect(new URL(page.url()).searchParams.get('cursor')).toBeTruthy();
    expect(await page.getByRole('button', { name: 'Next page' }).count()).toBe(0);
    await page.getByRole('button', { name: 'First page' }).click();
    await expect.poll(() => shown(page), { timeout: 15_000 }).toEqual(first);

    // A time window: nothing was requested before 2000, and the window too survives a reload.
    await page.getByLabel('Until').fill('2000-01-01T00:00');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByText('No decisions match these filters.').waitFor({ timeout: 15_000 });
    expect(new URL(page.url()).searchParams.get('until')).toBe(new Date('2000-01-01T00:00').toISOString());
    await page.reload();
    await page.getByText('No decisions match these filters.').waitFor({ timeout: 15_000 });
    expect(await page.getByLabel('Until').inputValue()).toBe('2000-01-01T00:00');
    await page.getByLabel('Until').fill('');
    await page.getByLabel('Since').fill('2000-01-01T00:00');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(async () => (await shown(page)).length, { timeout: 15_000 }).toBe(2);

    await page.goto('/decisions?decision=MAYBE&policy_id=other-guard');
    await expect.poll(() => shown(page), { timeout: 15_000 }).toEqual([runs.otherBlock]);
    expect(await page.getByRole('status').first().textContent()).toContain('decision');
    await context.close();
  });
});
