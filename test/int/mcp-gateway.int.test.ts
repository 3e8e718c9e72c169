import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStreamId } from '../../services/decisions/ids.ts';
import { activateYaml, addPrincipal, api, eventually, freePort, ROOT, startTestStack, type TestStack } from './harness.ts';
import { CLI, gatewayFiles, stdioGateway, type GatewayClient } from './mcp-gateway-harness.ts';

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: mcp-gateway-test, name: MCP gateway under test }
scope: { level: tenant }
rules:
  - name: small-refunds
    match: { tool: payments, operation: refund }
    condition: amount <= 100
    decision: ALLOW
    reason: small refunds are automatic
  - name: big-refunds
    match: { tool: payments, operation: refund }
    condition: amount > 100 && amount <= 5000
    decision: REQUIRE_APPROVAL
    reason: refunds over 100 need finance
    approval: { approvers: [finance], quorum: 1, timeout: 1h }
  - name: huge-refunds
    match: { tool: payments, operation: refund }
    condition: amount > 5000
    decision: DENY
    reason: refunds over 5000 are never automatic
  - name: no-closing
    match: { tool: payments, operation: close_account }
    decision: DENY
    reason: accounts are closed by people
  - name: reads-are-quick
    match: { tool: payments, risk_tags: [read] }
    decision: ALLOW_WITH_CONSTRAINTS
    constraints: { max_runtime_sec: 2 }
    reason: reads run at most 2 s
  - name: known-accounts
    match: { tool: payments, operation: get_balance }
    decision: ALLOW_WITH_CONSTRAINTS
    constraints: { allowed_account: [acc-1, acc-2], require_audit_log: true }
    reason: balances of known accounts only
  - name: failing-is-fine
    match: { tool: payments, operation: fail }
    decision: ALLOW
  - name: everything-reads
    match: { tool: everything, risk_tags: [read] }
    decision: ALLOW
    reason: the reference server's reads are fine
  - name: ledger-size
    on: outcome
    match: { tool: payments, operation: export_ledger }
    condition: 'has(output.structuredContent) && output.structuredContent.rows > 100'
    decision: DENY
    reason: at most 100 rows may leave the ledger
`;

const text = (r: CallToolResult) => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
const runEvents = async (stack: TestStack, id: string) =>
  (await stack.db.query<{ type: string; data: any }>('SELECT type, data FROM events WHERE stream_id = $1 ORDER BY stream_version', [runStreamId(id)])).rows;
// Test stacks share one Temporal and the tenant id `default`, and the gateway's idempotency keys are derived from
// the call: an agent id of its own per run keeps this run's workflow ids apart from every earlier run's.
const AGENT = `pay-bot-${randomBytes(4).toString('hex')}`;
const decisionOf = (r: CallToolResult) => (r._meta?.['countersign/decision'] as { decision_id: string } | undefined)?.decision_id;

describe('the MCP gateway: every tools/call of an MCP client governed, against the real stack and real MCP servers', () => {
  let stack: TestStack;
  let bot: { id: string; key: string };
  let approver: { id: string; key: string };
  let catalogAdmin: { id: string; key: string };
  let files: ReturnType<typeof gatewayFiles>;
  let gw: GatewayClient;
  let env: Record<string, string>;

  const pendingFor = (order: string) => eventually(async () => {
    const r = await api({ url: stack.url, key: approver.key }, 'GET', '/v1/approvals');
    for (const item of r.body.items ?? []) {
      const events = await runEvents(stack, item.decision_id);
      if (events[0]?.data.request.action.args.order === order) return item.decision_id as string;
    }
    return undefined;
  }, 30_000, `the approval round of ${order}`);

  beforeAll(async () => {
    stack = await startTestStack({ COUNTERSIGN_OUTCOME_WINDOW: '10m', COUNTERSIGN_OVERRIDE_WINDOW: '10m' });
    await activateYaml(stack, POLICY);
    bot = await addPrincipal(stack, { name: AGENT, kind: 'agent', roles: ['agent'] });
    approver = await addPrincipal(stack, { name: 'Fran', roles: ['approver'], groups: ['finance'] });
    catalogAdmin = await addPrincipal(stack, { name: 'catalog-admin', kind: 'agent', roles: ['admin'] });
    files = gatewayFiles({ agent: AGENT, environment: 'staging', max_hold_sec: 60, progress_interval_sec: 0.2, idempotency_window_sec: 7 * 86_400 }, { everything: true });
    env = { COUNTERSIGN_URL: stack.url, COUNTERSIGN_API_KEY: bot.key, COUNTERSIGN_CATALOG_API_KEY: catalogAdmin.key };
    gw = await stdioGateway(files.config, env);
  });
  afterAll(async () => {
    await gw?.close();
    await stack?.stop();
  });

  it('lists the tools of both upstreams, and registers their annotations in the tool catalog as risk tags', async () => {
    const { tools } = await gw.client.listTools();
    const names = tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['refund', 'get_balance', 'close_account', 'export_ledger', 'echo', 'get-sum']));
    expect(tools.find((t) => t.name === 'refund')?.annotations).toMatchObject({ destructiveHint: false, openWorldHint: true });

    const catalog = await api({ url: stack.url, key: bot.key }, 'GET', '/v1/tools/catalog');
    expect(catalog.body.sources.map((s: any) => s.source).sort()).toEqual(['mcp.everything', 'mcp.payments']);
    const tags = (tool: string, operation: string) => catalog.body.entries.find((e: any) => e.tool === tool && e.operation === operation)?.risk_tags;
    expect(tags('payments', 'refund')).toEqual(['write', 'external']);
    expect(tags('payments', 'get_balance')).toEqual(['read']);
    expect(tags('payments', 'close_account')).toEqual(['write', 'destructive']);
    expect(tags('everything', 'echo')).toEqual(['read']);
  });

  it('ALLOW: forwarded, the result comes back unchanged, the outcome is on the run', async () => {
    const r = (await gw.client.callTool({ name: 'refund', arguments: { order: 'A-1', amount: 40 } })) as CallToolResult;
    expect(r.isError).toBeFalsy();
    expect(text(r)).toBe('refunded 40 USD on A-1');
    expect(r.structuredContent).toEqual({ refunded: 40, order: 'A-1' });
    const ran = files.executed().filter((e) => e.tool === 'refund' && e.args['order'] === 'A-1');
    expect(ran).toHaveLength(1);
    const decisionId = (ran[0]!.meta?.['countersign/decision'] as { decision_id: string }).decision_id;
    const events = await eventually(async () => { const e = await runEvents(stack, decisionId); return e.some((x) => x.type === 'OutcomeReported') ? e : undefined; });
    expect(events[0]!.data.request).toMatchObject({
      agent: { id: AGENT },
      action: { tool: 'payments', operation: 'refund', args: { order: 'A-1', amount: 40 } },
      context: { order: 'A-1', amount: 40, environment: 'staging' },
    });
    expect(events.find((e) => e.type === 'DecisionFinalized')!.data).toMatchObject({ decision: 'ALLOW', matched_rule: 'small-refunds' });
    expect(events.find((e) => e.type === 'OutcomeReported')!.data).toMatchObject({ status: 'succeeded' });
    // The catalog's tags were on the decision.
    const evaluated = events.find((e) => e.type === 'PolicyEvaluated')!.data.evaluation;
    expect(evaluated.facts.tool_catalog.risk_tags).toEqual(['write', 'external']);
  });

  it('the reference server behind the gateway: tools, resources and prompts pass through', async () => {
    const echo = (await gw.client.callTool({ name: 'echo', arguments: { message: 'hi' } })) as CallToolResult;
    expect(echo.isError).toBeFalsy();
    expect(text(echo)).toContain('hi');
    const sum = (await gw.client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } })) as CallToolResult;
    expect(text(sum)).toContain('5');
    const resources = await gw.client.listResources();
    expect(resources.resources.length).toBeGreaterThan(0);
    const read = await gw.client.readResource({ uri: resources.resources[0]!.uri });
    expect(read.contents[0]!.uri).toBe(resources.resources[0]!.uri);
    const prompts = await gw.client.listPrompts();
    expect(prompts.prompts.map((p) => p.name)).toContain('simple-prompt');
    const prompt = await gw.client.getPrompt({ name: 'simple-prompt' });
    expect(prompt.messages.length).toBeGreaterThan(0);
    // A write tool of the reference server matches no rule: the tenant default (DENY), nothing forwarded.
    const toggled = (await gw.client.callTool({ name: 'toggle-simulated-logging', arguments: {} })) as CallToolResult;
    expect(toggled.isError).toBe(true);
  });

  it('DENY: not forwarded (the upstream saw nothing); the result names the reason, rule, decision and the override route', async () => {
    const before = files.executed().length;
    const r = (await gw.client.callTool({ name: 'close_account', arguments: { account: 'acc-9' } })) as CallToolResult;
    expect(r.isError).toBe(true);
    const t = text(r);
    expect(t).toContain('accounts are closed by people');
    expect(t).toContain('Rule: no-closing');
    expect(t).toMatch(/Decision: dec_[0-9a-f]{32}/);
    expect(t).toContain('/override');
    const big = (await gw.client.callTool({ name: 'refund', arguments: { order: 'A-2', amount: 9000 } })) as CallToolResult;
    expect(big.isError).toBe(true);
    expect(text(big)).toContain('huge-refunds');
    expect(files.executed().length).toBe(before);
  });

  it('REQUIRE_APPROVAL: held with progress notifications, approved through the API, then forwarded once', async () => {
    const progress: Array<{ progress: number; message?: string }> = [];
    const call = gw.client.callTool({ name: 'refund', arguments: { order: 'B-1', amount: 650 } }, CallToolResultSchema, {
      onprogress: (p) => progress.push(p), timeout: 60_000, resetTimeoutOnProgress: true,
    });
    const id = await pendingFor('B-1');
    await eventually(async () => (progress.length >= 3 ? true : undefined), 10_000, 'progress notifications');
    expect(files.executed().filter((e) => e.args['order'] === 'B-1')).toHaveLength(0);
    const ok = await api({ url: stack.url, key: approver.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve', comment: 'customer is right' });
    expect(ok.status).toBe(200);
    const r = (await call) as CallToolResult;
    expect(text(r)).toBe('refunded 650 USD on B-1');
    expect(progress.map((p) => p.progress)).toEqual(progress.map((_, i) => i + 1));
    // The first ticks may come while the decision is still being asked for; once held, they name the decision.
    expect(progress.some((p) => p.message?.includes(id))).toBe(true);
    expect(files.executed().filter((e) => e.args['order'] === 'B-1')).toHaveLength(1);
    await eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'OutcomeReported') ? true : undefined));
  });

  it('REQUIRE_APPROVAL rejected: not forwarded, the refusal names the decision', async () => {
    const call = gw.client.callTool({ name: 'refund', arguments: { order: 'B-2', amount: 700 } }, CallToolResultSchema, { timeout: 60_000 });
    const id = await pendingFor('B-2');
    const no = await api({ url: stack.url, key: approver.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'reject', comment: 'not this one' });
    expect(no.status).toBe(200);
    const r = (await call) as CallToolResult;
    expect(r.isError).toBe(true);
    expect(text(r)).toContain(id);
    expect(files.executed().filter((e) => e.args['order'] === 'B-2')).toHaveLength(0);
  });

  it('a gateway killed while a call is held: restarted, the client retries and gets the approved answer once', async () => {
    const first = await stdioGateway(files.config, env);
    const held = first.client.callTool({ name: 'refund', arguments: { order: 'C-1', amount: 800 } }, CallToolResultSchema, { timeout: 60_000 });
    held.catch(() => undefined);
    const id = await pendingFor('C-1');
    process.kill(first.transport.pid!, 'SIGKILL');
    await expect(held).rejects.toThrow();
    await first.close().catch(() => undefined);
    expect((await api({ url: stack.url, key: approver.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' })).status).toBe(200);

    const second = await stdioGateway(files.config, env);
    try {
      const r = (await second.client.callTool({ name: 'refund', arguments: { order: 'C-1', amount: 800 } })) as CallToolResult;
      expect(text(r)).toBe('refunded 800 USD on C-1');
      expect(files.executed().filter((e) => e.args['order'] === 'C-1')).toHaveLength(1);
      const runs = (await stack.db.query(`SELECT DISTINCT stream_id FROM events WHERE type = 'DecisionRequested' AND data->'request'->'action'->'args'->>'order' = 'C-1'`)).rows;
      expect(runs).toHaveLength(1);
      await eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'OutcomeReported') ? true : undefined));
      // The same call made again is a new execution: it needs its own approval, not the spent one.
      const again = second.client.callTool({ name: 'refund', arguments: { order: 'C-1', amount: 800 } }, CallToolResultSchema, { timeout: 60_000 });
      const secondId = await eventually(async () => {
        const r2 = await api({ url: stack.url, key: approver.key }, 'GET', '/v1/approvals');
        return (r2.body.items ?? []).map((i: any) => i.decision_id as string).find((d: string) => d !== id);
      });
      expect(secondId).not.toBe(id);
      await api({ url: stack.url, key: approver.key }, 'POST', `/v1/decisions/${secondId}/approvals`, { verdict: 'reject' });
      expect(((await again) as CallToolResult).isError).toBe(true);
      expect(files.executed().filter((e) => e.args['order'] === 'C-1')).toHaveLength(1);
    } finally {
      await second.close();
    }
  });

  it('attack spent-decision-after-restart: a decision used before a gateway restart never authorises a second execution', async () => {
    let attempts = 0;
    let through = 0;
    const decisionsOf = (order: string) => files.executed().filter((e) => e.tool === 'refund' && e.args['order'] === order)
      .map((e) => (e.meta?.['countersign/decision'] as { decision_id: string }).decision_id);
    const outcomeOn = (id: string) => eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'OutcomeReported') ? true : undefined), 30_000, `the outcome of ${id}`);
    const restart = async (g: GatewayClient) => {
      process.kill(g.transport.pid!, 'SIGKILL');
      await g.close().catch(() => undefined);
      return stdioGateway(files.config, env);
    };

    // ALLOW: executed once, the gateway killed and restarted, the identical call again.
    let g = await stdioGateway(files.config, env);
    try {
      expect(text((await g.client.callTool({ name: 'refund', arguments: { order: 'S-1', amount: 20 } })) as CallToolResult)).toBe('refunded 20 USD on S-1');
      const [firstId] = decisionsOf('S-1');
      await outcomeOn(firstId!);
      g = await restart(g);
      for (let i = 0; i < 2; i++) {
        attempts++;
        const r = (await g.client.callTool({ name: 'refund', arguments: { order: 'S-1', amount: 20 } })) as CallToolResult;
        expect(r.isError).toBeFalsy();
        const ids = decisionsOf('S-1');
        // Each execution under a decision of its own: none reused.
        if (new Set(ids).size !== ids.length || ids.length !== i + 2) through++;
        await outcomeOn(ids.at(-1)!);
        if (i === 0) g = await restart(g);
      }
      expect(decisionsOf('S-1')).toHaveLength(3);

      // REQUIRE_APPROVAL: approved and executed, the gateway restarted, the identical call is held for a new approval.
      const held = g.client.callTool({ name: 'refund', arguments: { order: 'S-2', amount: 800 } }, CallToolResultSchema, { timeout: 60_000 });
      const approvedId = await pendingFor('S-2');
      expect((await api({ url: stack.url, key: approver.key }, 'POST', `/v1/decisions/${approvedId}/approvals`, { verdict: 'approve' })).status).toBe(200);
      expect(text((await held) as CallToolResult)).toBe('refunded 800 USD on S-2');
      await outcomeOn(approvedId);
      g = await restart(g);

      attempts++;
      const again = g.client.callTool({ name: 'refund', arguments: { order: 'S-2', amount: 800 } }, CallToolResultSchema, { timeout: 60_000 });
      again.catch(() => undefined);
      const first = await Promise.race([again.then(() => 'ran' as const), pendingFor('S-2').then((id) => ({ id }))]);
      if (first === 'ran' || decisionsOf('S-2').length !== 1) through++;
      expect(first).not.toBe('ran');
      const newId = (first as { id: string }).id;
      expect(newId).not.toBe(approvedId);
      expect(decisionsOf('S-2')).toEqual([approvedId]);
      expect((await api({ url: stack.url, key: approver.key }, 'POST', `/v1/decisions/${newId}/approvals`, { verdict: 'approve' })).status).toBe(200);
      expect(text((await again) as CallToolResult)).toBe('refunded 800 USD on S-2');
      expect(decisionsOf('S-2')).toEqual([approvedId, newId]);
    } finally {
      await g.close();
    }
    console.log(`attack spent-decision-after-restart: ${attempts} attempts, ${through} got through`);
    expect(through).toBe(0);
  });

  it('ALLOW_WITH_CONSTRAINTS: allow-lists checked before forwarding, max_runtime_sec as the timeout, the rest in _meta', async () => {
    const ok = (await gw.client.callTool({ name: 'get_balance', arguments: { account: 'acc-1' } })) as CallToolResult;
    expect(text(ok)).toBe('balance of acc-1: 100.00');
    const seen = files.executed().find((e) => e.tool === 'get_balance' && e.args['account'] === 'acc-1')!;
    expect(seen.meta?.['countersign/decision']).toMatchObject({
      decision: 'ALLOW_WITH_CONSTRAINTS',
      constraints: { max_runtime_sec: 2, allowed_account: ['acc-1', 'acc-2'], require_audit_log: true },
      enforced_by_gateway: expect.arrayContaining(['max_runtime_sec', 'allowed_account']),
      to_enforce: { require_audit_log: true },
    });
    const bad = (await gw.client.callTool({ name: 'get_balance', arguments: { account: 'acc-666' } })) as CallToolResult;
    expect(bad.isError).toBe(true);
    expect(text(bad)).toContain('allowed_account');
    expect(files.executed().filter((e) => e.args['account'] === 'acc-666')).toHaveLength(0);

    const slow = (await gw.client.callTool({ name: 'export_ledger', arguments: { seconds: 6 } })) as CallToolResult;
    expect(slow.isError).toBe(true);
    expect(text(slow)).toContain('max_runtime_sec=2');
    await eventually(async () => (files.executed().some((e) => e.tool === 'export_ledger:cancelled') ? true : undefined), 15_000, 'the upstream saw the cancellation');
  });

  it('an output rule violated: the result is withheld with the reason, and the violation is on the run', async () => {
    const r = (await gw.client.callTool({ name: 'export_ledger', arguments: { seconds: 0, rows: 500 } })) as CallToolResult;
    expect(r.isError).toBe(true);
    expect(text(r)).toContain('at most 100 rows may leave the ledger');
    const id = decisionOf(r)!;
    const events = await runEvents(stack, id);
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['OutcomeReported', 'OutputViolation']));
    const fine = (await gw.client.callTool({ name: 'export_ledger', arguments: { seconds: 0, rows: 5 } })) as CallToolResult;
    expect(text(fine)).toBe('exported 5 rows');
  });

  it('hide_denied leaves out the tools the policies always deny (still decided if called); prefixed names route back', async () => {
    const hiding = gatewayFiles({ agent: AGENT, environment: 'staging', hide_denied: true, tool_names: 'prefixed', register_catalog: false });
    const g = await stdioGateway(hiding.config, env);
    try {
      const names = (await g.client.listTools()).tools.map((t) => t.name);
      expect(names).toEqual(expect.arrayContaining(['payments__refund', 'payments__get_balance', 'payments__export_ledger']));
      expect(names).not.toContain('payments__close_account');
      const r = (await g.client.callTool({ name: 'payments__close_account', arguments: { account: 'acc-1' } })) as CallToolResult;
      expect(r.isError).toBe(true);
      expect(text(r)).toContain('no-closing');
      const ok = (await g.client.callTool({ name: 'payments__refund', arguments: { order: 'E-1', amount: 1 } })) as CallToolResult;
      expect(text(ok)).toBe('refunded 1 USD on E-1');
      expect(hiding.executed().map((e) => e.tool)).toEqual(['refund']);
    } finally {
      await g.close();
    }
  });

  it('attack: malformed JSON-RPC gets protocol errors and never reaches an upstream', async () => {
    const child = spawn(process.execPath, [CLI, 'mcp', 'gateway', '--config', files.config], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    try {
      await eventually(async () => (/ready:/.test(err) ? true : undefined), 60_000, 'the gateway to start');
      const before = files.executed().length;
      child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } })}\n`);
      child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
      const attacks = [
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"refund","arguments":{"order":"M-1","amount":1}}',
        'tools/call refund M-2',
        '{"jsonrpc":"1.0","id":3,"method":"tools/call","params":{"name":"refund","arguments":{"order":"M-3","amount":1}}}',
        '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"refund","arguments":"order=M-4"}}',
        '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"arguments":{"order":"M-5","amount":1}}}',
        '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"refund;rm","arguments":{"order":"M-6","amount":1}}}',
        '[{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"refund","arguments":{"order":"M-7","amount":1}}}]',
        '{"jsonrpc":"2.0","id":8,"method":"tools/cal","params":{"name":"refund","arguments":{"order":"M-8","amount":1}}}',
      ];
      for (const a of attacks) child.stdin.write(`${a}\n`);
      const answers = await eventually(async () => {
        const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: unknown; error?: { code: number } });
        return lines.length >= attacks.length + 1 ? lines : undefined;
      }, 30_000, 'an answer to every malformed message');
      const errors = answers.filter((a) => a.error).map((a) => a.error!.code);
      expect(errors).toHaveLength(attacks.length);
      expect(new Set(errors)).toEqual(new Set([-32700, -32600, -32602, -32601]));
      const reached = files.executed().slice(before).filter((e) => String(e.args['order']).startsWith('M-')).length;
      console.log(`attack malformed-jsonrpc-through-gateway: ${attacks.length} attempts, ${reached} got through`);
      expect(reached).toBe(0);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('Countersign unreachable: fails closed, nothing forwarded', async () => {
    const { COUNTERSIGN_CATALOG_API_KEY: _admin, ...agentOnly } = env;
    const down = await stdioGateway(files.config, { ...agentOnly, COUNTERSIGN_URL: `http://127.0.0.1:${await freePort()}` });
    try {
      const before = files.executed().length;
      const r = (await down.client.callTool({ name: 'refund', arguments: { order: 'D-1', amount: 10 } })) as CallToolResult;
      expect(r.isError).toBe(true);
      expect(text(r)).toMatch(/could not decide.*failing closed/s);
      expect(files.executed().length).toBe(before);
    } finally {
      await down.close();
    }
  });

  it('Streamable HTTP: a wrong or missing token is refused; the right one is served', async () => {
    const port = await freePort();
    const token = 'test-token-0123456789abcdef';
    const child = spawn(process.execPath, [CLI, 'mcp', 'gateway', '--config', files.config, '--http', `127.0.0.1:${port}`], {
      cwd: ROOT, env: { ...process.env, ...env, COUNTERSIGN_MCP_TOKEN: token }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    try {
      await eventually(async () => (/ready:/.test(err) ? true : undefined), 60_000, `the HTTP gateway to start: ${err}`);
      const url = new URL(`http://127.0.0.1:${port}/mcp`);
      let attempts = 0;
      for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong-token-0123456789abcdef' }, { authorization: `Basic ${token}` }, { authorization: `Bearer ${token}x` }]) {
        attempts++;
        const client = new Client({ name: 'intruder', version: '1' });
        await expect(client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }))).rejects.toThrow();
      }
      const raw = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'refund', arguments: { order: 'H-0', amount: 1 } } }) });
      expect(raw.status).toBe(401);
      const badJson = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,' });
      expect(badJson.status).toBe(400);
      expect(((await badJson.json()) as { error: { code: number } }).error.code).toBe(-32700);
      console.log(`attack wrong-bearer-token: ${attempts + 1} attempts, 0 got through`);
      expect(files.executed().filter((e) => e.args['order'] === 'H-0')).toHaveLength(0);

      const client = new Client({ name: 'host', version: '1' });
      await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
      const r = (await client.callTool({ name: 'refund', arguments: { order: 'H-1', amount: 5 } })) as CallToolResult;
      expect(text(r)).toBe('refunded 5 USD on H-1');
      await client.close();
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
