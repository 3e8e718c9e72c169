import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../schemas/events.ts';
import { Replay } from '../../services/audit/replay.ts';
import { registerCatalogSource } from '../../services/catalog/catalog-store.ts';
import { createPool, withTenant, type Db } from '../../services/events/db.ts';
import { eventHash } from '../../services/events/hash-chain.ts';
import { readAll } from '../../services/events/read-events.ts';
import { activatePolicy } from '../../services/lifecycle/activate-policy.ts';
import { parsePolicyText } from '../../services/policy/index.ts';
import { loadOrCreateKeyring } from '../../services/receipts/keyring.ts';
import { activateYaml, addPrincipal, api, eventually, ROOT, startTestStack, type TestStack } from './harness.ts';

// Keys unique per run: workflow ids derive from (tenant, key), and the Temporal server outlives test databases.
const RUN = randomBytes(4).toString('hex');
const key = (k: string) => `${k}-${RUN}`;

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: catalog-test, name: Destructive operations are denied }
scope: { level: tenant }
rules:
  - name: no-destructive
    match: { risk_tags: [destructive] }
    decision: DENY
    reason: destructive operations are denied
  - name: billing-ok
    match: { tool: billing }
    decision: ALLOW
    reason: billing calls are fine
  - name: big-writes-reported
    on: outcome
    match: { risk_tags: [write] }
    condition: 'has(output.rows) && output.rows > 10'
    decision: REQUIRE_APPROVAL
    reason: a write touched more than 10 rows
`;

const OPENAPI = {
  openapi: '3.0.3',
  info: { title: 'Billing', version: '1' },
  paths: {
    '/invoices': { get: { operationId: 'listInvoices', responses: { 200: { description: 'ok' } } }, post: { operationId: 'createInvoice' } },
    '/invoices/{id}': { delete: { operationId: 'deleteInvoice' }, patch: { operationId: 'updateInvoice' } },
  },
};

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), ...args], { cwd: ROOT, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('tool catalog: registered documents tag requests, decisions record the tags, replay agrees', () => {
  let stack: TestStack;
  let agent: { id: string; key: string };
  let appDb: Db; // the application role: row-level security applies
  const dir = mkdtempSync(path.join(tmpdir(), 'countersign-catalog-'));
  beforeAll(async () => {
    stack = await startTestStack();
    await activateYaml(stack, POLICY);
    agent = await addPrincipal(stack, { name: 'billing-bot', kind: 'agent', roles: ['agent'] });
    appDb = createPool(stack.dbUrl, 2);
  });
  afterAll(async () => {
    await appDb?.end();
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const ask = (body: Record<string, unknown>, as = agent) => api({ url: stack.url, key: as.key }, 'POST', '/v1/decisions', { agent: { id: 'billing-bot' }, ...body });
  const catalogEvents = async () => (await stack.db.query(`SELECT type, tenant_id, data FROM events WHERE stream_id LIKE 'catalog/%' ORDER BY position`)).rows as Array<{ type: string; tenant_id: string; data: any }>;
  const runEvent = (decisionId: string, type: string) => eventually(async () => {
    const r = await stack.db.query<{ data: any }>('SELECT data FROM events WHERE stream_id = $1 AND type = $2', [`run/${decisionId}`, type]);
    return r.rows[0]?.data;
  }, 30_000, `${type} of ${decisionId}`);
  const receiptOf = (id: string) => eventually(async () => {
    const r = await api(stack, 'GET', `/v1/decisions/${id}/receipt`);
    return r.status === 200 ? r.body : undefined;
  }, 30_000, `the receipt of ${id}`);

  it('refuses bad documents with every problem and its path, writing no event', async () => {
    const bad: Array<[unknown, number, string, Array<{ path: string; message: string }> | null]> = [
      [{ format: 'openapi', tool: 'billing', document: { openapi: '3.0.0', paths: { '/a': { get: { operationId: 'x' } }, '/b': { post: { operationId: 'x' }, delete: { operationId: 5 } } } } }, 400, 'validation_failed', [
        { path: 'document.paths./b.post', message: 'operation "x" is also defined at document.paths./a.get; operationIds must be unique' },
        { path: 'document.paths./b.delete.operationId', message: 'Invalid input: expected string, received number' },
      ]],
      [{ format: 'openapi', tool: 'billing', document: { info: {}, paths: {} } }, 400, 'validation_failed', [{ path: 'document.openapi', message: 'not an OpenAPI document: it has neither `openapi: 3.x` nor `swagger: "2.0"`' }]],
      [{ format: 'mcp', source: 'fs', document: { tools: [{ name: 'read' }], nextCursor: 'page-2' } }, 400, 'validation_failed', [{ path: 'document.nextCursor', message: 'this is one page of a paginated tools/list: merge every page into one tools array' }]],
      [{ format: 'mcp', source: 'fs', document: { tools: [{ name: 'x', annotations: { readOnlyHint: 'yes' } }] } }, 400, 'validation_failed', [{ path: 'document.tools.0.annotations.readOnlyHint', message: 'Invalid input: expected boolean, received string' }]],
      [{ format: 'openapi', document: OPENAPI }, 400, 'validation_failed', null],
      [{ format: 'graphql', tool: 'x', document: {} }, 400, 'validation_failed', null],
      [{ format: 'mcp', source: '../etc', document: { tools: [{ name: 'a' }] } }, 400, 'validation_failed', null],
      [{ format: 'openapi', tool: 'billing', document: OPENAPI, extra: true }, 400, 'validation_failed', null],
    ];
    for (const [body, status, code, errors] of bad) {
      const res = await api(stack, 'POST', '/v1/tools/catalog', body);
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      expect(res.body.code).toBe(code);
      if (errors) expect(res.body.errors).toEqual(errors);
    }
    // Too big, too deep, not an admin: refused before anything is parsed or written.
    const huge = { format: 'mcp', source: 'big', document: { tools: [{ name: 'a', description: 'x'.repeat(1_100_000) }] } };
    expect((await api(stack, 'POST', '/v1/tools/catalog', huge)).status).toBe(413);
    let deep: unknown = {};
    for (let i = 0; i < 100; i++) deep = { a: deep };
    expect((await api(stack, 'POST', '/v1/tools/catalog', { format: 'mcp', source: 'deep', document: { tools: [{ name: 'a', annotations: deep }] } })).status).toBe(400);
    const asAgent = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/tools/catalog', { format: 'openapi', tool: 'billing', document: OPENAPI });
    expect(asAgent.status).toBe(403);
    expect(await catalogEvents()).toEqual([]);
    expect((await stack.db.query('SELECT 1 FROM tool_catalog_sources')).rowCount).toBe(0);
    expect((await api(stack, 'GET', '/v1/tools/catalog')).body).toMatchObject({ version: 0, sources: [], entries: [] });
  });

  let denied: string;
  let catalogHash: string;
  it('a catalogued DELETE with no tags from the agent is denied by the rule on destructive; the tags and catalog version are recorded', async () => {
    // Before the catalog, the same request is a plain billing call.
    const before = await ask({ action: { tool: 'billing', operation: 'deleteInvoice', args: { id: 'INV-1' } }, idempotency_key: key('before') });
    expect(before.body).toMatchObject({ decision: 'ALLOW', matched_rule: 'billing-ok' });

    const reg = await api(stack, 'POST', '/v1/tools/catalog', { format: 'openapi', tool: 'billing', document: OPENAPI });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    expect(reg.body).toMatchObject({ version: 1, changed: true, source: { source: 'billing', format: 'openapi', tool: 'billing', entries: 4 } });
    expect(reg.body.entries).toContainEqual({ tool: 'billing', operation: 'deleteInvoice', risk_tags: ['write', 'destructive'], source: 'openapi' });
    catalogHash = reg.body.hash;
    // The same document again: nothing written.
    const again = await api(stack, 'POST', '/v1/tools/catalog', { format: 'openapi', tool: 'billing', document: OPENAPI });
    expect(again).toMatchObject({ status: 200, body: { version: 1, changed: false, hash: catalogHash } });
    const events = await catalogEvents();
    expect(events.map((e) => [e.type, e.tenant_id, e.data.catalog_version, e.data.catalog_hash])).toEqual([['ToolCatalogRegistered', 'default', 1, catalogHash]]);

    const res = await ask({ action: { tool: 'billing', operation: 'deleteInvoice', args: { id: 'INV-2' } }, idempotency_key: key('delete') });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ decision: 'DENY', matched_rule: 'no-destructive', reason: 'destructive operations are denied' });
    denied = res.body.decision_id;

    const requested = await runEvent(denied, 'DecisionRequested');
    expect(requested.request.context.risk_tags).toBeUndefined(); // what the agent sent, as it sent it
    const evaluated = await runEvent(denied, 'PolicyEvaluated');
    expect(evaluated.evaluation.facts).toEqual({ tool_catalog: { version: 1, hash: catalogHash, risk_tags: ['write', 'destructive'] } });

    const receipt = await receiptOf(denied);
    expect(receipt.receipt).toMatchObject({ decision_id: denied, decision: 'DENY', matched_rule: 'no-destructive', facts: { tool_catalog: { version: 1, hash: catalogHash, risk_tags: ['write', 'destructive'] } } });

    // The agent's own tags stay; a read is tagged read and allowed.
    const read = await ask({ action: { tool: 'billing', operation: 'listInvoices' }, context: { risk_tags: ['pii'] }, idempotency_key: key('read') });
    expect(read.body).toMatchObject({ decision: 'ALLOW', matched_rule: 'billing-ok' });
    expect((await runEvent(read.body.decision_id, 'PolicyEvaluated')).evaluation.facts.tool_catalog.risk_tags).toEqual(['read']);
    // An agent that calls its delete a read cannot shed the catalog's tags.
    const liar = await ask({ action: { tool: 'billing', operation: 'deleteInvoice' }, context: { risk_tags: ['read'] }, idempotency_key: key('liar') });
    expect(liar.body).toMatchObject({ decision: 'DENY', matched_rule: 'no-destructive' });
    // Output rules see the catalog's tags too: a create is a write, and its outcome is checked as one.
    const create = await ask({ action: { tool: 'billing', operation: 'createInvoice' }, idempotency_key: key('create') });
    expect(create.body).toMatchObject({ decision: 'ALLOW', matched_rule: 'billing-ok' });
    await receiptOf(create.body.decision_id);
    const reported = await api({ url: stack.url, key: agent.key }, 'POST', `/v1/decisions/${create.body.decision_id}/outcome`, { status: 'succeeded', output: { rows: 50 } });
    expect(reported.status, JSON.stringify(reported.body)).toBe(200);
    expect(reported.body.violations_found).toEqual([{ policy_id: 'catalog-test', rule: 'big-writes-reported', reason: 'a write touched more than 10 rows' }]);
    const lookup = await api(stack, 'GET', '/v1/tools/catalog/lookup?tool=billing&operation=deleteInvoice');
    expect(lookup.body).toEqual({ tool: 'billing', operation: 'deleteInvoice', risk_tags: ['write', 'destructive'], version: 1, hash: catalogHash });
    // Simulation answers as the decision path does: with the catalog's tags.
    const sim = await api(stack, 'POST', '/v1/policy/simulate', { request: { agent: { id: 'billing-bot' }, action: { tool: 'billing', operation: 'deleteInvoice' } } });
    expect(sim.body).toMatchObject({ decision: 'DENY', matched_rule: 'no-destructive', facts: { tool_catalog: { version: 1, hash: catalogHash, risk_tags: ['write', 'destructive'] } } });
  });

  it('audit replay re-derives every decision, catalog tags included, and agrees with the receipts; a forged fact is caught', async () => {
    await receiptOf(denied);
    const out = await eventually(async () => {
      const r = await cli(['audit', 'replay', '--from', 'postgres', '--json'], stack.env);
      const report = JSON.parse(r.stdout);
      return report.receipts.some((x: { receipt: { decision_id: string } }) => x.receipt.decision_id === denied) ? { r, report } : undefined;
    }, 60_000, 'replay');
    expect(out.report.divergences).toEqual([]);
    expect(out.r.code, out.r.stderr).toBe(0);
    expect(out.report.re_evaluated).toBeGreaterThanOrEqual(5);
    const replayed = out.report.receipts.find((x: { receipt: { decision_id: string } }) => x.receipt.decision_id === denied);
    expect(replayed.receipt).toEqual((await receiptOf(denied)).receipt);

    // The same log with the run's fact rewritten (tags dropped, chain recomputed so only the fact is wrong):
    // replay rebuilds catalog version 1 from its events and names the difference.
    const all: StoredEvent[] = [];
    for await (const e of readAll(stack.db, { raw: true })) all.push(e);
    const forged = forgeFact(all, denied, (f) => ({ ...f, risk_tags: [] }));
    const replay = new Replay({ keys: null });
    forged.forEach((e, i) => replay.add({ value: JSON.stringify(e), where: String(i) }));
    const problems = replay.finish().divergences.map((d) => d.problem);
    expect(problems).toContain('tool catalog version 1 gives [write, destructive] for this request, the decision recorded []');
    // And a decision that cites a catalog version the log does not have.
    const replay2 = new Replay({ keys: null });
    forgeFact(all, denied, (f) => ({ ...f, version: 9 })).forEach((e, i) => replay2.add({ value: JSON.stringify(e), where: String(i) }));
    expect(replay2.finish().divergences.map((d) => d.problem)).toContain('tool catalog version 9 of tenant default is not in the log (or not verifiable)');
    // A catalog event rewritten to call the delete a read (chain recomputed): its recorded hash no longer
    // matches the catalog it makes, so the fold stops there and the decisions citing it are reported.
    const replay3 = new Replay({ keys: null });
    forgeStream(all, 'catalog/default', (e) => {
      if (e.type !== 'ToolCatalogRegistered') return;
      for (const entry of (e.data as { entries: Array<{ operation?: string; risk_tags: string[] }> }).entries) if (entry.operation === 'deleteInvoice') entry.risk_tags = ['read'];
    }).forEach((e, i) => replay3.add({ value: JSON.stringify(e), where: String(i) }));
    const problems3 = replay3.finish().divergences.map((d) => d.problem);
    expect(problems3.some((p) => /^catalog version 1: recorded hash sha256:[0-9a-f]{64} differs from the catalog rebuilt from its events/.test(p)), problems3.join('\n')).toBe(true);
    expect(problems3).toContain('tool catalog version 1 of tenant default is not in the log (or not verifiable)');
  });

  it("another tenant's catalog does not apply, and neither tenant sees the other's", async () => {
    const tenant = `cat-other-${RUN}`;
    const created = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id: tenant, name: 'Other' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const admin = { url: stack.url, key: created.body.admin_api_key as string };
    const parsed = parsePolicyText(POLICY, 'policy.yaml');
    if (!parsed.ok) throw new Error('policy');
    await activatePolicy(stack.db, await loadOrCreateKeyring(stack.env['COUNTERSIGN_KEYS_DIR']!), { tenantId: tenant, document: parsed.document, actor: 'test' });
    const otherAgent = await api(admin, 'POST', '/v1/principals', { name: 'bot', kind: 'agent', roles: ['agent'], groups: [], agent_id: 'billing-bot' });
    const other = { id: otherAgent.body.id as string, key: otherAgent.body.api_key as string };

    expect((await api(admin, 'GET', '/v1/tools/catalog')).body).toMatchObject({ version: 0, sources: [], entries: [] });
    expect((await api(admin, 'GET', '/v1/tools/catalog/billing')).status).toBe(404);
    expect((await api(admin, 'DELETE', '/v1/tools/catalog/billing')).status).toBe(404);
    const theirs = await ask({ action: { tool: 'billing', operation: 'deleteInvoice' }, idempotency_key: key('other-delete') }, other);
    expect(theirs.body).toMatchObject({ decision: 'ALLOW', matched_rule: 'billing-ok' });
    expect((await runEvent(theirs.body.decision_id, 'PolicyEvaluated')).evaluation.facts).toEqual({});

    // Its own catalog (MCP, the server as the tool) says deleteInvoice is read-only: that is its business.
    const reg = await api(admin, 'POST', '/v1/tools/catalog', { format: 'mcp', tool: 'billing', document: { tools: [{ name: 'deleteInvoice', annotations: { readOnlyHint: true } }] } });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    expect(reg.body.version).toBe(1);
    const mine = await ask({ action: { tool: 'billing', operation: 'deleteInvoice' }, idempotency_key: key('other-read') }, other);
    expect(mine.body).toMatchObject({ decision: 'ALLOW', matched_rule: 'billing-ok' });
    expect((await runEvent(mine.body.decision_id, 'PolicyEvaluated')).evaluation.facts.tool_catalog).toMatchObject({ version: 1, risk_tags: ['read'] });
    // The default tenant is unaffected.
    expect((await ask({ action: { tool: 'billing', operation: 'deleteInvoice' }, idempotency_key: key('still-denied') })).body.decision).toBe('DENY');

    // Row-level security: under the application role each tenant sees its own rows only.
    const rows = async (t: string) => withTenant(appDb, t, async (c) => (await c.query<{ tenant_id: string }>('SELECT tenant_id FROM tool_catalog_sources')).rows.map((r) => r.tenant_id));
    expect(await rows('default')).toEqual(['default']);
    expect(await rows(tenant)).toEqual([tenant]);
  });

  it('a change written by another process reaches the decision path (NOTIFY); removal stops the tags', async () => {
    // Written straight to the store, not through this API: only the notification can drop its cache.
    await registerCatalogSource(stack.db, { tenantId: 'default', principalId: 'test' }, { format: 'mcp', source: 'fs', document: { tools: [{ name: 'fs_rm', annotations: { openWorldHint: false } }] } }, new Date());
    await eventually(async () => {
      const r = await ask({ action: { tool: 'fs_rm' }, idempotency_key: key(`fs-${randomBytes(3).toString('hex')}`) });
      return r.body.matched_rule === 'no-destructive' ? true : undefined;
    }, 20_000, 'the catalog change to reach the API');

    const removed = await api(stack, 'DELETE', '/v1/tools/catalog/billing');
    expect(removed.status, JSON.stringify(removed.body)).toBe(200);
    expect(removed.body).toMatchObject({ version: 3, sources: [{ source: 'fs' }] });
    const after = await ask({ action: { tool: 'billing', operation: 'deleteInvoice' }, idempotency_key: key('after-removal') });
    expect(after.body).toMatchObject({ decision: 'ALLOW', matched_rule: 'billing-ok' });
    expect((await runEvent(after.body.decision_id, 'PolicyEvaluated')).evaluation.facts.tool_catalog).toMatchObject({ version: 3, risk_tags: [] });
    expect((await catalogEvents()).filter((e) => e.tenant_id === 'default').map((e) => [e.type, e.data.catalog_version])).toEqual([
      ['ToolCatalogRegistered', 1], ['ToolCatalogRegistered', 2], ['ToolCatalogRemoved', 3],
    ]);
  });

  it('CLI: tools register (YAML, detected as MCP), list, lookup, remove', async () => {
    const env = { ...stack.env, COUNTERSIGN_URL: stack.url, COUNTERSIGN_API_KEY: stack.key, COUNTERSIGN_CONFIG: path.join(dir, 'none.json') };
    const file = path.join(dir, 'tools.yaml');
    writeFileSync(file, 'jsonrpc: "2.0"\nid: 1\nresult:\n  tools:\n    - name: send_mail\n      annotations: { destructiveHint: false, openWorldHint: true }\n      inputSchema: { type: object }\n');
    const reg = await cli(['tools', 'register', file, '--tool', 'mailer', '--json'], env);
    expect(reg.code, reg.stderr).toBe(0);
    expect(JSON.parse(reg.stdout)).toMatchObject({ changed: true, source: { source: 'mailer', format: 'mcp' }, entries: [{ tool: 'mailer', operation: 'send_mail', risk_tags: ['write', 'external'] }] });
    const list = await cli(['tools', 'list'], env);
    expect(list.stdout).toMatch(/mailer\s+mailer\s+send_mail\s+write,external/);
    const lookup = await cli(['tools', 'lookup', 'mailer', 'send_mail', '--json'], env);
    expect(JSON.parse(lookup.stdout).risk_tags).toEqual(['write', 'external']);
    const openapi = path.join(dir, 'billing.json');
    writeFileSync(openapi, JSON.stringify(OPENAPI));
    const noTool = await cli(['tools', 'register', openapi], env);
    expect(noTool.code).toBe(2);
    expect(noTool.stderr).toMatch(/needs --tool/);
    const badFile = path.join(dir, 'bad.json');
    writeFileSync(badFile, JSON.stringify({ openapi: '3.0.0', paths: { '/a': { get: { operationId: 1 } } } }));
    const bad = await cli(['tools', 'register', badFile, '--tool', 'x'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/document\.paths\.\/a\.get\.operationId: Invalid input: expected string/);
    expect((await cli(['tools', 'remove', 'mailer'], env)).code).toBe(0);
  });
});

/** The log with one stream's events changed and its hash chain recomputed (what a forger with the database can do). */
function forgeStream(events: StoredEvent[], stream: string, change: (e: StoredEvent) => void): StoredEvent[] {
  const out = events.map((e) => JSON.parse(JSON.stringify(e)) as StoredEvent);
  let prev: StoredEvent['prev_hash'] = null;
  for (const e of out.filter((x) => x.stream_id === stream).sort((a, b) => a.stream_version - b.stream_version)) {
    change(e);
    e.prev_hash = prev;
    e.hash = eventHash(e);
    prev = e.hash;
  }
  return out;
}

/** The log with one run's facts.tool_catalog rewritten. */
function forgeFact(events: StoredEvent[], decisionId: string, change: (fact: Record<string, unknown>) => Record<string, unknown>): StoredEvent[] {
  return forgeStream(events, `run/${decisionId}`, (e) => {
    if (e.type !== 'PolicyEvaluated') return;
    const ev = (e.data as { evaluation: { facts: Record<string, Record<string, unknown>> } }).evaluation;
    ev.facts['tool_catalog'] = change(ev.facts['tool_catalog']!);
  });
}
