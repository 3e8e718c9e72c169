import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { parse, stringify } from 'yaml';
import { activateYaml, addPrincipal, api, eventually, ROOT, startTestStack, type TestStack } from '../int/harness.ts';
import { openConsole, shot, signInWithKey, SHOTS } from './console-session.ts';

/**
 * The console's pages beyond the first flows (console.browser.test.ts): the inbox's full context and live
 * closure, a phone and the keyboard, the policy lifecycle (simulate, validate by rule, diff, export, import,
 * roll back, deprecate, four-eyes), agents, tools, members, audit, the one-time sign-in link, and what each
 * role sees. Debian's Chromium, driven by playwright-core, against a whole test stack.
 */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
const CI = Boolean(process.env['CI']);

let stack: TestStack;
let browser: Browser;
const people: Record<string, { id: string; key: string }> = {};
let bot: { id: string; key: string };

const DESKTOP = { width: 1100, height: 800 };
const PHONE = { width: 390, height: 844 };

const open = (viewport = DESKTOP, mobile = false) => openConsole(browser, stack.url, { viewport, mobile });

const signIn = (key: string, viewport = DESKTOP, mobile = false) => signInWithKey(browser, stack.url, key, { viewport, mobile });


async function ask(body: unknown): Promise<{ decision_id: string; status: string; decision: string }> {
  const res = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** Waits until the run's first events are written (answers need them). */
const written = (id: string) => eventually(async () => ((await api({ url: stack.url, key: bot.key }, 'GET', `/v1/decisions/${id}/events`)).status === 200 ? true : undefined), 30_000, `${id}'s first events`);

function cli(args: string[], configFile: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: Record<string, string | undefined> = { ...process.env, COUNTERSIGN_CONFIG: configFile };
    delete env['COUNTERSIGN_URL'];
    delete env['COUNTERSIGN_API_KEY'];
    execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), ...args], { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const WIRES = `apiVersion: countersign/v1
kind: Policy
metadata: { id: two-approvers, name: Wires need two, domain: finance }
scope: { level: tenant }
rules:
  - name: wires-need-two
    match: { tool: wire_tool }
    decision: REQUIRE_APPROVAL
    reason: wires need two finance approvers
    constraints: { max_runtime_sec: 300 }
    approval: { approvers: [finance], quorum: 2, timeout: 2h, on_timeout: DENY }
  - name: lookups
    match: { tool: lookup_tool }
    decision: ALLOW
    reason: lookups are read-only
`;

describe.runIf(CHROMIUM || CI)('console pages in a real browser', () => {
  beforeAll(async () => {
    if (!CHROMIUM) throw new Error('no Chromium on this machine (apt-get install chromium): under CI the browser tests must run');
    mkdirSync(SHOTS, { recursive: true });
    stack = await startTestStack();
    for (const name of ['alice', 'bob', 'carol']) people[name] = await addPrincipal(stack, { name, roles: ['approver'], groups: ['finance'] });
    people['ann'] = await addPrincipal(stack, { name: 'ann', roles: ['author'] });
    bot = await addPrincipal(stack, { name: 'pay-bot', kind: 'agent', roles: ['agent'] });
    await activateYaml(stack, WIRES);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it('the inbox shows a round\'s full context and who answered so far, and says why a round closed elsewhere', async () => {
    const { context, page } = await signIn(people['alice']!.key);
    const run = await ask({ agent: { id: 'pay-bot' }, action: { tool: 'wire_tool', operation: 'Send', args: { to: 'ACME GmbH', iban: 'DE89 3704 0044 0532 0130 00' } }, context: { amount: 1200 } });
    expect(run.status).toBe('pending_approval');
    await written(run.decision_id);
    const card = page.locator(`li[data-decision="${run.decision_id}"]`);
    await card.waitFor({ timeout: 30_000 });
    const text = await card.textContent();
    for (const want of ['wire_tool · Send', 'pay-bot', 'wires-need-two', 'two-approvers v1', 'ACME GmbH', 'max_runtime_sec', '0 of 2 approvals', 'nobody yet', 'then DENY', 'wires need two finance approvers']) expect(text).toContain(want);

    // Carol answers elsewhere (the API): alice's card shows it at the next poll.
    expect((await api({ url: stack.url, key: people['carol']!.key }, 'POST', `/v1/decisions/${run.decision_id}/approvals`, { verdict: 'approve', comment: 'called ACME' })).status).toBe(200);
    await expect.poll(() => card.getByTestId('answers').textContent(), { timeout: 15_000 }).toContain(`${people['carol']!.id} approved via api`);
    expect(await card.textContent()).toContain('1 of 2 approvals');
    await shot(page, 'inbox-context');

    // Bob's answer completes the quorum elsewhere: the card leaves, and the page says why.
    expect((await api({ url: stack.url, key: people['bob']!.key }, 'POST', `/v1/decisions/${run.decision_id}/approvals`, { verdict: 'approve' })).status).toBe(200);
    await card.waitFor({ state: 'detached', timeout: 15_000 });
    const why = page.getByText(/closed elsewhere: the run is final, ALLOW/);
    await why.waitFor({ timeout: 15_000 });
    expect(await why.textContent()).toContain(run.decision_id);
    await shot(page, 'inbox-closed-elsewhere');
    await context.close();
  });

  it('an approver answers from a phone, with the keyboard alone, and the page fits the screen', async () => {
    const { context, page } = await signIn(people['alice']!.key, PHONE, true);
    const run = await ask({ agent: { id: 'pay-bot' }, action: { tool: 'payment_tool', operation: 'Refund', args: { order: 'A-17' } }, context: { amount: 800 } });
    await written(run.decision_id);
    const card = page.locator(`li[data-decision="${run.decision_id}"]`);
    await card.waitFor({ timeout: 30_000 });
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    await shot(page, 'inbox-phone');
    // Keyboard only: focus the comment, type, Tab to Approve, Enter.
    await card.getByLabel('Comment').focus();
    await page.keyboard.type('ok from my phone');
    await page.keyboard.press('Tab');
    expect(await page.evaluate<string>('document.activeElement && document.activeElement.textContent')).toBe('Approve');
    await page.keyboard.press('Enter');
    await page.getByText(/your approve counted/).waitFor();
    // The skip link is the first stop of the keyboard and moves focus to the content.
    await page.goto('/decisions');
    await page.getByRole('heading', { name: 'Decisions' }).waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate<string>('document.activeElement && document.activeElement.textContent')).toBe('Skip to content');
    await page.goto('/policies');
    await page.getByRole('link', { name: 'two-approvers' }).waitFor();
    expect(await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth')).toBeLessThanOrEqual(0);
    await shot(page, 'policies-phone');
    await context.close();
  });

  it('an author simulates, validates with the decisions that would change rule by rule, diffs, activates, exports, imports, rolls back and deprecates', async () => {
    // A past run the draft would change: lookups are ALLOW today.
    const past = await ask({ agent: { id: 'pay-bot' }, action: { tool: 'lookup_tool' } });
    expect(past.decision).toBe('ALLOW');
    await written(past.decision_id);
    const { context, page } = await signIn(people['ann']!.key);
    await page.goto('/policies');
    const row = page.locator('tr', { has: page.getByRole('link', { name: 'two-approvers' }) });
    await row.waitFor();
    expect(await row.textContent()).toContain('finance');
    expect(await row.textContent()).toContain('active');
    await shot(page, 'policies-list');

    await page.getByRole('link', { name: 'two-approvers' }).click();
    await page.getByRole('button', { name: 'Clone to edit' }).click();
    await expect.poll(() => page.locator('.meta').textContent()).toContain('draft v2');
    const editor = page.getByLabel('Policy (YAML)');
    await expect.poll(async () => (await editor.inputValue()).includes('lookups')).toBe(true);
    // The author's edit: lookups become DENY, and a natural-language rule is added.
    const doc = parse(await editor.inputValue()) as { rules: Array<Record<string, unknown>> };
    doc.rules = [...doc.rules.map((r) => (r['name'] === 'lookups' ? { ...r, decision: 'DENY' } : r)), { text: 'Deny shell_exec in prod' }];
    await editor.fill(stringify(doc));
    await page.getByRole('button', { name: 'Save draft' }).click();
    await page.getByText('Draft saved').waitFor();
    const nl = page.getByRole('region', { name: /Natural-language rules/ });
    await nl.waitFor();
    expect(await nl.textContent()).toContain('Deny shell_exec in prod');
    expect(await nl.textContent()).toContain('"decision":"DENY"');

    // Simulate the lookup with the draft (DENY), then against the active set (ALLOW).
    await page.getByLabel('Request (JSON)').fill(JSON.stringify({ agent: { id: 'pay-bot' }, action: { tool: 'lookup_tool' } }));
    await page.getByRole('button', { name: 'Simulate' }).click();
    await expect.poll(() => page.getByTestId('simulation').textContent()).toMatch(/^DENY/);
    await page.getByLabel('with the policy in the editor').uncheck();
    await page.getByRole('button', { name: 'Simulate' }).click();
    await expect.poll(() => page.getByTestId('simulation').textContent()).toMatch(/^ALLOW/);
    await shot(page, 'policy-simulate');

    await page.getByRole('button', { name: 'Validate' }).click();
    const report = page.getByTestId('validation-report');
    await report.waitFor();
    const byRule = page.getByRole('table', { name: 'Changes by rule' });
    expect(await byRule.locator('tr', { hasText: 'lookups' }).textContent()).toMatch(/lookups\s*1\s*1/);
    expect(await page.getByRole('list', { name: 'Decisions that would change' }).textContent()).toContain('ALLOW → DENY');
    await shot(page, 'policy-validate');

    await page.getByRole('button', { name: 'Activate' }).click();
    await expect.poll(() => page.getByTestId('policy-status').textContent(), { timeout: 15_000 }).toBe('active');
    // Diff v1 -> v2, rule by rule.
    await page.getByLabel('From', { exact: true }).selectOption('1');
    await page.getByLabel('To', { exact: true }).selectOption('2');
    const diff = page.getByRole('list', { name: 'Rule changes' });
    await expect.poll(() => diff.textContent()).toContain('changed lookups');
    expect(await diff.textContent()).toContain('added Deny shell_exec in prod');
    expect(await diff.textContent()).toContain('unchanged wires-need-two');
    await shot(page, 'policy-diff');

    // Export v1 (signed JSON, a file of this page), then import it back as a draft.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export v1' }).click()]);
    expect(download.suggestedFilename()).toBe('two-approvers.v1.json');
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'cs-export-')), 'two-approvers.v1.json');
    await download.saveAs(file);
    await page.goto('/policies');
    await page.locator('#import-file').setInputFiles(file);
    const imported = page.getByText('Imported as a draft: two-approvers');
    await imported.waitFor();
    // The import (v1's signed document) lands as draft v3; activating it brings lookups back.
    await imported.getByRole('link', { name: 'two-approvers' }).click();
    await expect.poll(() => page.locator('.meta').textContent()).toContain('draft v3');
    await page.getByRole('button', { name: 'Activate' }).click();
    await expect.poll(() => page.getByTestId('policy-status').textContent(), { timeout: 15_000 }).toBe('active');
    const allowed = await eventually(async () => {
      const d = await ask({ agent: { id: 'pay-bot' }, action: { tool: 'lookup_tool' } });
      return d.decision === 'ALLOW' ? d : undefined;
    }, 30_000, 'lookups allowed again under the imported version');
    expect(allowed.decision).toBe('ALLOW');
    // Roll back to v2 (lookups DENY again), then deprecate.
    await page.getByRole('button', { name: 'Roll back to v2' }).click();
    await page.getByText(/Rolled back: v4 re-activates v2's document/).waitFor({ timeout: 15_000 });
    const denied = await eventually(async () => {
      const d = await ask({ agent: { id: 'pay-bot' }, action: { tool: 'lookup_tool' } });
      return d.decision === 'DENY' ? d : undefined;
    }, 30_000, 'lookups denied after the rollback to v2');
    expect(denied.decision).toBe('DENY');
    await page.getByRole('button', { name: 'Deprecate' }).click();
    await page.getByText(/Deprecated: v4 no longer applies/).waitFor({ timeout: 15_000 });
    await shot(page, 'policy-versions');
    await context.close();
  });

  it('a four-eyes tenant: activation waits for a second admin, who approves it in the console; the requester cannot', async () => {
    const t = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id: 'four-eyes', name: 'Four eyes', settings: { policy_four_eyes: true } });
    expect(t.status).toBe(201);
    const second = await api({ url: stack.url, key: t.body.admin_api_key }, 'POST', '/v1/principals', { name: 'second admin', kind: 'person', roles: ['admin'], groups: [] });
    const first = await signIn(t.body.admin_api_key);
    await first.page.goto('/policies/new');
    await first.page.getByLabel('Policy (YAML)').fill(['apiVersion: countersign/v1', 'kind: Policy', 'metadata: { id: fe-pol, name: Reviewed, domain: ops }', 'rules:', '  - name: deny-shell', '    match: { tool: shell_exec }', '    decision: DENY', ''].join('\n'));
    await first.page.getByRole('button', { name: 'Save draft' }).click();
    await first.page.waitForURL('**/policies/fe-pol');
    await first.page.getByRole('button', { name: 'Activate' }).click();
    await first.page.getByText(/waits for a second admin's review/).waitFor();
    const panel = first.page.getByTestId('activation-review');
    await panel.waitFor();
    expect(await panel.textContent()).toContain('waiting for a second admin');
    expect(await first.page.getByRole('button', { name: 'Approve activation' }).count()).toBe(0);
    await shot(first.page, 'policy-four-eyes-pending');

    const other = await signIn(second.body.api_key);
    await other.page.goto('/policies/fe-pol');
    await other.page.getByRole('button', { name: 'Approve activation' }).click();
    await expect.poll(() => other.page.getByTestId('policy-status').textContent(), { timeout: 15_000 }).toBe('active');
    await shot(other.page, 'policy-four-eyes-approved');
    await first.context.close();
    await other.context.close();
  });

  it('agents, tools, members and audit pages for an admin; an approver sees none of their controls and the API refuses anyway', async () => {
    const reg = await api(stack, 'POST', '/v1/tools/catalog', { format: 'mcp', source: 'files', document: { tools: [{ name: 'read_file', annotations: { readOnlyHint: true } }, { name: 'delete_file', annotations: { destructiveHint: true } }] } });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    const { context, page } = await signIn(stack.key);

    await page.getByRole('link', { name: 'Agents' }).click();
    await page.getByRole('link', { name: 'pay-bot' }).click();
    await page.getByTestId('binding').waitFor();
    expect(await page.getByTestId('binding').textContent()).toContain('No policy bound');
    await page.getByLabel('Manifest (JSON)').fill(JSON.stringify({ agent: { id: 'pay-bot' }, tools: ['shell_exec', 'payment_tool'] }));
    await page.getByRole('button', { name: 'Check manifest' }).click();
    await expect.poll(() => page.getByTestId('manifest-result').textContent()).toContain('shell_exec');
    await page.getByRole('region', { name: 'Recent decisions' }).getByRole('link').first().waitFor();
    await shot(page, 'agent');

    await page.getByRole('link', { name: 'Tools' }).click();
    const tools = page.getByRole('table', { name: 'Tools' });
    await tools.locator('tr', { hasText: 'delete_file' }).waitFor();
    expect(await tools.locator('tr', { hasText: 'delete_file' }).textContent()).toContain('destructive');
    await shot(page, 'tools');

    await page.getByRole('link', { name: 'Members' }).click();
    await page.getByRole('table', { name: 'Members' }).locator('tr', { hasText: 'alice' }).waitFor();
    await page.getByLabel('Name').fill('dave');
    await page.getByRole('button', { name: 'Add member' }).click();
    const key = await page.getByLabel('New API key').inputValue();
    expect(key).toMatch(/^cs_/);
    await shot(page, 'members');

    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByText('No replay has run for this tenant yet.').waitFor();
    await page.getByRole('button', { name: 'Run a replay now' }).click();
    const result = page.getByTestId('replay-result');
    await result.waitFor({ timeout: 60_000 });
    expect(await result.textContent()).toContain('no divergence');
    await shot(page, 'audit');
    await context.close();

    // An approver: no admin pages in the navigation, none of their controls by URL, and the API refuses.
    const alice = await signIn(people['alice']!.key);
    const nav = alice.page.getByRole('navigation', { name: 'Main' });
    for (const name of ['Agents', 'Members', 'Audit']) expect(await nav.getByRole('link', { name }).count()).toBe(0);
    await alice.page.goto('/members');
    await alice.page.getByText('Members and keys are for admins.').waitFor();
    await alice.page.goto('/audit');
    await alice.page.getByText('The audit page is for admins and auditors.').waitFor();
    await alice.page.goto('/tools');
    await alice.page.getByRole('table', { name: 'Tools' }).locator('tr', { hasText: 'delete_file' }).waitFor();
    expect(await alice.page.getByRole('button', { name: /Remove source/ }).count()).toBe(0);
    await alice.page.goto('/policies/two-approvers');
    await alice.page.getByTestId('policy-status').waitFor();
    for (const name of ['Activate', 'Save draft', 'Clone to edit', 'Deprecate', 'Validate']) expect(await alice.page.getByRole('button', { name }).count()).toBe(0);
    expect(await alice.page.getByRole('button', { name: /Roll back/ }).count()).toBe(0);
    const refused = await alice.page.evaluate(async () => {
      const s = await (await fetch('/v1/console/session')).json() as { csrf_token: string };
      const post = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf_token }, body: JSON.stringify(body) }).then((r) => r.status);
      return [
        await fetch('/v1/principals').then((r) => r.status),
        await post('/v1/audit/replays', {}),
        await post('/v1/policies/two-approvers/activate', {}),
        await post('/v1/policies/two-approvers/deprecate', {}),
        await post('/v1/principals', { name: 'x', kind: 'person', roles: ['admin'] }),
      ];
    });
    expect(refused).toEqual([403, 403, 403, 403, 403]);
    await alice.context.close();
  });

  it('countersign login --web prints a one-time link that signs the browser in, once', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-web-'));
    const keyFile = path.join(dir, 'key');
    writeFileSync(keyFile, people['alice']!.key, { mode: 0o600 });
    const out = await cli(['login', '--web', '--url', stack.url, '--key-file', keyFile], path.join(dir, 'config.json'));
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const url = /(http:\/\/\S+\/sign-in#link=csl_[A-Za-z0-9_-]{43})/.exec(out.stdout)?.[1];
    expect(url, out.stdout).toBeTruthy();
    expect(existsSync(path.join(dir, 'config.json'))).toBe(false);

    const first = await open();
    await first.page.goto(url!);
    await first.page.getByRole('button', { name: 'Sign out' }).waitFor();
    expect(first.page.url()).not.toContain('csl_');
    expect(await first.page.locator('.me').textContent()).toContain('alice');
    await shot(first.page, 'sign-in-link');
    await first.context.close();

    // The same link again (another browser): spent.
    const again = await open();
    await again.page.goto(url!);
    await again.page.getByRole('alert').waitFor();
    expect(await again.page.getByRole('alert').textContent()).toMatch(/spent or expired/);
    expect(await again.page.getByRole('button', { name: 'Sign out' }).count()).toBe(0);
    await shot(again.page, 'sign-in-link-spent');
    await again.context.close();
  });
});
