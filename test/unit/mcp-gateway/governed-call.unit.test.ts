import { PassThrough } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { GatewaySettings } from '../../../services/mcp-gateway/config.ts';
import { GovernedCalls } from '../../../services/mcp-gateway/governed-call.ts';
import { bearerMatches } from '../../../services/mcp-gateway/http-server.ts';
import { StrictStdioServerTransport } from '../../../services/mcp-gateway/stdio-transport.ts';
import type { Upstream } from '../../../services/mcp-gateway/upstreams.ts';
import { Transport } from '../../../services/sdk/transport.ts';

/** A real MCP upstream (the SDK's McpServer) in memory, counting what it ran. */
async function upstream(): Promise<{ upstream: Upstream; ran: string[] }> {
  const ran: string[] = [];
  const server = new McpServer({ name: 'payments', version: '1' });
  server.registerTool('refund', { inputSchema: { order: z.string() } }, async ({ order }) => {
    ran.push(order);
    return { content: [{ type: 'text', text: `refunded ${order}` }] };
  });
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  const client = new Client({ name: 'gateway', version: '1' });
  await client.connect(b);
  const tools = (await client.listTools()).tools;
  return { upstream: { name: 'payments', client, tools } as unknown as Upstream, ran };
}

type Reply = { status: number; body: unknown; headers?: Record<string, string> };
type Route = (body: any, path: string) => Reply | Promise<Reply>;
function fakeApi(routes: Record<string, Route>) {
  const asked: string[] = [];
  const fetchFn: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const key = `${init?.method ?? 'GET'} ${url.pathname}`;
    asked.push(key);
    const route = Object.entries(routes).find(([k]) => new RegExp(`^${k}$`).test(key));
    const out: Reply = route ? await route[1](init?.body ? JSON.parse(init.body as string) : undefined, url.pathname) : { status: 404, body: { code: 'not_found', detail: `no route ${key}` } };
    return new Response(JSON.stringify(out.body), { status: out.status, headers: { 'content-type': 'application/json', ...out.headers } });
  };
  return { asked, api: new Transport({ url: 'http://api.test', apiKey: 'k', fetch: fetchFn, backoffMs: 1 }) };
}

const decision = (d: string, status = 'final') => ({ decision_id: 'dec_00000000000000000000000000000001', decision: d, status, reason: `because ${d}`, matched_rule: 'r', matched_rules: [], constraints: {}, snapshot_hash: 'sha256:x' });
const settings = GatewaySettings.parse({ agent: 'pay-bot', progress_interval_sec: 0.05, max_hold_sec: 5 });
const waiter = () => ({ signal: new AbortController().signal, progress: undefined });
const ok = { status: 200, body: { violations: 0, violations_found: [], output_digest: 'sha256:x' } };

describe('governed calls', () => {
  it('identical calls in flight share one decision and one execution; the next identical call asks anew', async () => {
    const { upstream: u, ran } = await upstream();
    const keys: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const { api } = fakeApi({
      'POST /v1/decisions': async (body) => { keys.push(body.idempotency_key); await gate; return { status: 200, body: decision('ALLOW') }; },
      'POST /v1/decisions/.*/outcome': () => ok,
    });
    const calls = new GovernedCalls({ api, settings, log: () => undefined, checkOutput: () => false });
    const input = { upstream: u, tool: 'refund', args: { order: 'A-1' }, clientKey: undefined, meta: undefined };
    const both = Promise.all([calls.call(input, waiter()), calls.call(input, waiter())]);
    await new Promise((r) => setTimeout(r, 20));
    release();
    const [r1, r2] = await both;
    expect(r1).toEqual(r2);
    expect(ran).toEqual(['A-1']);
    expect(keys).toHaveLength(1);
    await calls.call(input, waiter());
    expect(ran).toEqual(['A-1', 'A-1']);
    expect(keys[1]).not.toBe(keys[0]);
    expect(keys[1]!.replace(/\/\d+$/, '')).toBe(keys[0]!.replace(/\/\d+$/, ''));
  });

  it('attack spent-decision-after-restart (unit): a restarted gateway walks past spent decisions, uses an unspent one once, and gives up closed', async () => {
    const { upstream: u, ran } = await upstream();
    // The API's record: one decision per idempotency key, spent once an outcome was reported on it.
    const byKey = new Map<string, string>();
    const spent = new Set<string>();
    let alwaysSpent = false;
    let alwaysReplayed = false;
    const { api, asked } = fakeApi({
      'POST /v1/decisions': (body) => {
        const known = byKey.get(body.idempotency_key);
        const id = known ?? `dec_${(byKey.size + 1).toString(16).padStart(32, '0')}`;
        byKey.set(body.idempotency_key, id);
        return { status: 200, body: { ...decision('ALLOW'), decision_id: id }, ...(known || alwaysReplayed ? { headers: { 'idempotent-replayed': 'true' } } : {}) };
      },
      'POST /v1/decisions/.*/outcome': (_b, path) => { spent.add(path.split('/')[3]!); return ok; },
      'GET /v1/decisions/.*/events': (_b, path) => ({ status: 200, body: { items: alwaysSpent || spent.has(path.split('/')[3]!) ? [{ type: 'OutcomeReported' }] : [{ type: 'DecisionRequested' }] } }),
    });
    const input = { upstream: u, tool: 'refund', args: { order: 'S-1' }, clientKey: undefined, meta: undefined };
    const started = () => new GovernedCalls({ api, settings, log: () => undefined, checkOutput: () => true });
    let attempts = 0;
    let through = 0;

    await started().call(input, waiter());
    for (let restart = 1; restart <= 3; restart++) {
      attempts++;
      await started().call(input, waiter());
      if (ran.length !== restart + 1 || spent.size !== restart + 1 || byKey.size !== restart + 1) through++;
    }
    expect(ran).toEqual(['S-1', 'S-1', 'S-1', 'S-1']);
    // Steady state asks nothing extra: a fresh answer is never checked.
    const before = asked.filter((k) => k.endsWith('/events')).length;
    const steady = started();
    await steady.call({ ...input, args: { order: 'S-2' } }, waiter());
    await steady.call({ ...input, args: { order: 'S-2' } }, waiter());
    expect(asked.filter((k) => k.endsWith('/events')).length).toBe(before);

    // An unspent replayed decision (asked before the restart, never forwarded) is used, once.
    alwaysReplayed = true;
    attempts++;
    await started().call({ ...input, args: { order: 'S-4' } }, waiter());
    if (ran.filter((o) => o === 'S-4').length !== 1) through++;
    // Every decision spent, forever: bounded, fails closed, nothing forwarded.
    alwaysSpent = true;
    attempts++;
    const n = ran.length;
    const closed = await started().call({ ...input, args: { order: 'S-3' } }, waiter());
    expect(closed.isError).toBe(true);
    expect(JSON.stringify(closed.content)).toContain('were all used already');
    if (ran.length !== n) through++;
    console.log(`attack spent-decision-after-restart-unit: ${attempts} attempts, ${through} got through`);
    expect(through).toBe(0);
  });

  it('attack: a hold nobody waits for any more is never forwarded; the retry runs it once', async () => {
    const { upstream: u, ran } = await upstream();
    let approved = false;
    const { api } = fakeApi({
      'POST /v1/decisions': () => ({ status: 200, body: approved ? decision('ALLOW') : decision('REQUIRE_APPROVAL', 'pending_approval') }),
      'GET /v1/decisions/.*': async () => { await new Promise((r) => setTimeout(r, 30)); return { status: 200, body: approved ? decision('ALLOW') : decision('REQUIRE_APPROVAL', 'pending_approval') }; },
      'POST /v1/decisions/.*/outcome': () => ok,
    });
    const calls = new GovernedCalls({ api, settings, log: () => undefined, checkOutput: () => false });
    const input = { upstream: u, tool: 'refund', args: { order: 'B-1' }, clientKey: undefined, meta: undefined };
    let attempts = 0;
    for (let i = 0; i < 5; i++) {
      attempts++;
      const ac = new AbortController();
      const p = calls.call(input, { signal: ac.signal, progress: undefined });
      await new Promise((r) => setTimeout(r, 10));
      ac.abort();
      await expect(p).rejects.toThrow(/cancelled/);
      if (i === 4) approved = true;
      await new Promise((r) => setTimeout(r, 80));
    }
    console.log(`attack forward-after-abandoned-hold: ${attempts} attempts, ${ran.length} got through`);
    expect(ran).toEqual([]);
    const r = await calls.call(input, waiter());
    expect(r.content).toEqual([{ type: 'text', text: 'refunded B-1' }]);
    expect(ran).toEqual(['B-1']);
  });

  it('fails closed: the API down, 503, or refusing the request forwards nothing; a 500 is retried with the same key', async () => {
    const { upstream: u, ran } = await upstream();
    const input = (order: string) => ({ upstream: u, tool: 'refund', args: { order }, clientKey: undefined, meta: undefined });
    let through = 0;
    const cases: Route[] = [
      () => ({ status: 503, body: { code: 'dependency_unavailable', detail: 'temporal is down' } }),
      () => ({ status: 400, body: { code: 'invalid_request', detail: 'bad', errors: [{ path: 'agent.id', message: 'no' }] } }),
      () => ({ status: 403, body: { code: 'forbidden', detail: 'this key may not act for pay-bot' } }),
      () => { throw new Error('socket hang up'); },
      () => ({ status: 200, body: { not: 'a decision' } }),
    ];
    for (const [i, route] of cases.entries()) {
      const { api } = fakeApi({ 'POST /v1/decisions': route });
      const r = await new GovernedCalls({ api, settings, log: () => undefined, checkOutput: () => false }).call(input(`C-${i}`), waiter());
      if (!r.isError) through++;
    }
    console.log(`attack forward-without-a-decision: ${cases.length} attempts, ${through + ran.length} got through`);
    expect(through + ran.length).toBe(0);

    const keys: string[] = [];
    const { api } = fakeApi({
      'POST /v1/decisions': (body) => { keys.push(body.idempotency_key); return keys.length < 3 ? { status: 500, body: { code: 'internal', detail: 'x' } } : { status: 200, body: decision('ALLOW') }; },
      'POST /v1/decisions/.*/outcome': () => ok,
    });
    const r = await new GovernedCalls({ api, settings, log: () => undefined, checkOutput: () => false }).call(input('C-9'), waiter());
    expect(r.isError).toBeFalsy();
    expect(new Set(keys).size).toBe(1);
    expect(ran).toEqual(['C-9']);
  });
});

describe('the stdio transport', () => {
  it('attack: malformed JSON-RPC gets protocol errors and never reaches the server', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const t = new StrictStdioServerTransport(input, output);
    const reached: JSONRPCMessage[] = [];
    t.onmessage = (m) => reached.push(m);
    await t.start();
    const lines: string[] = [];
    output.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    const bad = [
      'not json', '{"jsonrpc":"2.0","id":1,"method":', '[1,2', '"just a string"', '42', 'null', '{}', '{"jsonrpc":"1.0","id":1,"method":"tools/call"}',
      '{"jsonrpc":"2.0","id":2,"method":7}', '{"jsonrpc":"2.0","id":{"x":1},"method":"tools/call"}', '{"id":3,"method":"tools/list"}',
      '[{"jsonrpc":"2.0","id":4,"method":"tools/list"}]',
    ];
    input.write(`${bad.join('\n')}\n{"jsonrpc":"2.0","id":5,"method":"tools/list"}\n`);
    await new Promise((r) => setTimeout(r, 20));
    console.log(`attack malformed-jsonrpc-on-stdio: ${bad.length} attempts, ${reached.length - 1} got through`);
    expect(reached).toEqual([{ jsonrpc: '2.0', id: 5, method: 'tools/list' }]);
    const answers = lines.map((l) => JSON.parse(l) as { id: unknown; error: { code: number } });
    expect(answers).toHaveLength(bad.length);
    expect(answers.every((a) => a.error.code === -32700 || a.error.code === -32600)).toBe(true);
    expect(answers[0]).toMatchObject({ id: null, error: { code: -32700 } });
    expect(answers[8]).toMatchObject({ id: 2, error: { code: -32600 } });
    await t.close();
  });

  it('attack: only the exact bearer token passes', () => {
    const token = 'a-long-gateway-token-0123456789';
    const attempts = [undefined, '', 'Bearer', 'Bearer ', `Basic ${token}`, `Bearer ${token.slice(0, -1)}`, `Bearer ${token}x`, `Bearer  ${token.toUpperCase()}`, `Bearer ${token} extra`, token];
    const through = attempts.filter((h) => bearerMatches(h, token)).length;
    console.log(`attack bearer-token-guess: ${attempts.length} attempts, ${through} got through`);
    expect(through).toBe(0);
    expect(bearerMatches(`Bearer ${token}`, token)).toBe(true);
    expect(bearerMatches(`bearer ${token}`, token)).toBe(true);
  });
});
