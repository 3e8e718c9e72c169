import { describe, expect, it } from 'vitest';
import { DecisionRequest } from '../../../schemas/decision.ts';
import { checkArgumentConstraints } from '../../../services/mcp-gateway/argument-constraints.ts';
import { buildGatewayConfig, GatewayConfigError } from '../../../services/mcp-gateway/config.ts';
import { decisionRequestFor, idempotencyBase, idempotencyKeyFor, RESERVED_CONTEXT_NAMES } from '../../../services/mcp-gateway/decision-request.ts';
import { outputRuleMayApply } from '../../../services/mcp-gateway/output-rule-watch.ts';
import { boundedOutput } from '../../../services/mcp-gateway/tool-results.ts';
import { exposeNames } from '../../../services/mcp-gateway/tool-names.ts';

const call = { agent: 'pay-bot', environment: 'prod', upstream: 'payments', tool: 'refund', args: { order: 'A-1', amount: 650 } };
const base = (over: Partial<Parameters<typeof idempotencyBase>[0]> = {}) => idempotencyBase({ ...call, clientKey: undefined, windowSec: 3600, now: Date.UTC(2026, 11, 6, 10, 5), ...over });

describe('the decision request of a tools/call', () => {
  it('upstream is the tool, the MCP tool the operation, the arguments both args and top-level context, plus the environment', () => {
    const r = decisionRequestFor(call, 'mcp/abc/0');
    expect(r).toEqual({
      agent: { id: 'pay-bot' },
      action: { tool: 'payments', operation: 'refund', args: { order: 'A-1', amount: 650 } },
      context: { order: 'A-1', amount: 650, environment: 'prod' },
      idempotency_key: 'mcp/abc/0',
    });
    expect(DecisionRequest.safeParse(r).success).toBe(true);
  });

  it('attack: arguments that would pose as the gateway\'s facts or other CEL variables are never lifted into context', () => {
    const attempts = [
      { risk_tags: ['read'] }, { environment: 'dev' }, { action: { tool: 'search_tool' } }, { agent: { id: 'admin-bot' } },
      { model: { provider: 'x' } }, { now: '2000-01-01T00:00:00Z' }, { output: {} }, { status: 'succeeded' }, { context: { amount: 1 } },
    ];
    let through = 0;
    for (const args of attempts) {
      const r = decisionRequestFor({ ...call, args: { ...call.args, ...args } }, 'k');
      const name = Object.keys(args)[0]!;
      const ctx = r.context as Record<string, unknown>;
      if (name === 'environment' ? ctx['environment'] !== 'prod' : name in ctx) through++;
      expect(r.action.args).toMatchObject(args);
    }
    expect(attempts.length).toBe(RESERVED_CONTEXT_NAMES.size);
    console.log(`attack context-injection-through-arguments: ${attempts.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  });

  it('the idempotency key: what a client resends (agent, upstream, tool, canonical arguments, its own key or the window), nothing else', () => {
    expect(base()).toBe(base({ args: { amount: 650, order: 'A-1' } }));
    expect(base()).toBe(base({ now: Date.UTC(2026, 11, 6, 10, 59) }));
    const different = [
      base({ agent: 'other-bot' }), base({ upstream: 'billing' }), base({ tool: 'refund2' }), base({ args: { order: 'A-1', amount: 651 } }),
      base({ now: Date.UTC(2026, 11, 6, 11, 0) }), base({ clientKey: 'call-1' }),
    ];
    expect(new Set([base(), ...different]).size).toBe(different.length + 1);
    // A client key replaces the window: the same key is the same call whenever it is retried.
    expect(base({ clientKey: 'k1' })).toBe(base({ clientKey: 'k1', now: Date.UTC(2027, 0, 1) }));
    const key = idempotencyKeyFor(base(), 12);
    expect(key).toMatch(/^mcp\/[0-9a-f]{64}\/12$/);
    expect(DecisionRequest.shape.idempotency_key.safeParse(key).success).toBe(true);
  });
});

describe('argument constraints', () => {
  const declared = new Set(['account', 'currency', 'amount']);
  it('allow-lists and deny-lists are checked; max_runtime_sec is enforced; the rest is passed on', () => {
    const c = { max_runtime_sec: 5, allowed_account: ['acc-1', 'acc-2'], denied_currency: ['XXX'], require_audit_log: true, allowed_region: ['eu'], max_diff_lines: 10 };
    expect(checkArgumentConstraints(c, { account: 'acc-1', currency: 'EUR' }, declared)).toEqual({
      ok: true, enforced: ['max_runtime_sec', 'allowed_account', 'denied_currency'], passed: { require_audit_log: true, allowed_region: ['eu'], max_diff_lines: 10 },
    });
    expect(checkArgumentConstraints({ allowed_amount: ['10', '20'] }, { amount: 20 }, declared).ok).toBe(true);
    expect(checkArgumentConstraints({ allowed_account: ['a', 'b'] }, { account: ['a', 'b'] }, declared).ok).toBe(true);
  });

  it('attack: values outside an allow-list or inside a deny-list never pass', () => {
    const attempts: Array<[Record<string, unknown>, Record<string, unknown>]> = [
      [{ allowed_account: ['acc-1'] }, { account: 'acc-666' }],
      [{ allowed_account: ['acc-1'] }, { account: 'ACC-1' }],
      [{ allowed_account: ['acc-1'] }, { account: ['acc-1', 'acc-666'] }],
      [{ allowed_account: ['acc-1'] }, { account: { id: 'acc-1' } }],
      [{ allowed_account: ['acc-1'] }, { account: [{ id: 'acc-1' }] }],
      [{ allowed_account: ['acc-1'] }, { account: null }],
      [{ allowed_account: ['acc-1'] }, {}],
      [{ allowed_account: ['acc-1'] }, { account: 'acc-1 ' }],
      [{ denied_currency: ['XXX'] }, { currency: 'XXX' }],
      [{ denied_currency: ['XXX'] }, { currency: ['EUR', 'XXX'] }],
      [{ denied_currency: ['XXX'] }, { currency: { code: 'XXX' } }],
      [{ allowed_amount: ['10'] }, { amount: 10.5 }],
    ];
    let through = 0;
    for (const [c, args] of attempts) if (checkArgumentConstraints(c, args, declared).ok) through++;
    console.log(`attack argument-constraint-bypass: ${attempts.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  });
});

describe('merged names', () => {
  it('on-collision prefixes only the colliding names; prefixed prefixes all; routes lead back to the upstream\'s own name', () => {
    const lists = [{ upstream: 'a', items: [{ name: 'echo' }, { name: 'x' }] }, { upstream: 'b', items: [{ name: 'echo' }, { name: 'y' }] }];
    const merged = exposeNames(lists, 'on-collision');
    expect(merged.items.map((i) => i.name)).toEqual(['a__echo', 'x', 'b__echo', 'y']);
    expect(merged.routes.get('b__echo')).toEqual({ upstream: 'b', name: 'echo' });
    expect(exposeNames(lists, 'prefixed').items.map((i) => i.name)).toEqual(['a__echo', 'a__x', 'b__echo', 'b__y']);
    // A tool literally named like another's prefixed name is not routed twice.
    const tricky = exposeNames([{ upstream: 'a', items: [{ name: 'b__y' }] }, { upstream: 'b', items: [{ name: 'y' }] }], 'prefixed');
    expect(tricky.items.map((i) => i.name)).toEqual(['a__b__y', 'b__y']);
    expect(tricky.routes.get('b__y')).toEqual({ upstream: 'b', name: 'y' });
  });
});

describe('output rules and bounded outcomes', () => {
  it('an output rule may apply unless its tool or operation rules the tool out; natural-language rules always may', () => {
    const doc = (rules: unknown[]) => ({ rules });
    expect(outputRuleMayApply([doc([{ name: 'r', match: { tool: 'payments' }, decision: 'ALLOW' }])], 'payments', 'refund')).toBe(false);
    expect(outputRuleMayApply([doc([{ name: 'r', on: 'outcome', match: { tool: 'pay*', operation: ['refund'] }, decision: 'DENY' }])], 'payments', 'refund')).toBe(true);
    expect(outputRuleMayApply([doc([{ name: 'r', on: 'outcome', match: { tool: 'billing' }, decision: 'DENY' }])], 'payments', 'refund')).toBe(false);
    expect(outputRuleMayApply([doc([{ name: 'r', on: 'outcome', match: { risk_tags: ['write'] }, decision: 'DENY' }])], 'payments', 'refund')).toBe(true);
    expect(outputRuleMayApply([doc([{ text: 'never return more than 100 rows' }])], 'payments', 'refund')).toBe(true);
  });

  it('a large result is reported as its digest, size, structured content when it fits, and a text prefix', () => {
    const small = { content: [{ type: 'text' as const, text: 'ok' }] };
    expect(boundedOutput(small, 1024)).toBe(small);
    const big = { content: [{ type: 'text' as const, text: 'x'.repeat(10_000) }], structuredContent: { rows: 500 } };
    const out = boundedOutput(big, 1024) as Record<string, unknown>;
    expect(out).toMatchObject({ truncated: true, isError: false, structuredContent: { rows: 500 } });
    expect(String(out['digest'])).toMatch(/^sha256:/);
    expect(JSON.stringify(out).length).toBeLessThan(1024);
  });
});

describe('the gateway configuration', () => {
  const env = { COUNTERSIGN_URL: 'http://127.0.0.1:8080', COUNTERSIGN_API_KEY: 'cs_agent' };
  const file = { mcpServers: { payments: { command: 'node', args: ['s.js'] }, docs: { url: 'https://mcp.example.com/mcp' } }, countersign: { agent: 'pay-bot', environment: 'prod' } };

  it('reads the mcpServers shape and the settings, flags over the file, with every default', () => {
    const c = buildGatewayConfig(file, { max_hold_sec: 30 }, env);
    expect(c.upstreams['payments']).toEqual({ command: 'node', args: ['s.js'], env: {} });
    expect(c.settings).toMatchObject({ agent: 'pay-bot', environment: 'prod', max_hold_sec: 30, output_rules: 'auto', tool_names: 'on-collision', hide_denied: false });
    expect(c.http).toBeUndefined();
    expect(buildGatewayConfig(file, { http: '127.0.0.1:8765' }, { ...env, COUNTERSIGN_MCP_TOKEN: 'x'.repeat(16) }).http).toEqual({ host: '127.0.0.1', port: 8765, token: 'x'.repeat(16) });
  });

  it('refuses with every error named: bad names, secrets in the file, HTTP without a token, a missing key', () => {
    const fails = (f: unknown, flags: Parameters<typeof buildGatewayConfig>[1], e: Record<string, string | undefined>) => {
      try { buildGatewayConfig(f, flags, e); return ''; } catch (err) { expect(err).toBeInstanceOf(GatewayConfigError); return (err as Error).message; }
    };
    expect(fails({ ...file, mcpServers: { 'a__b': { command: 'x' } } }, {}, env)).toContain('mcpServers.a__b: an upstream name may not contain "__"');
    expect(fails({ ...file, countersign: { agent: 'pay-bot', api_key: 'cs_secret' } }, {}, env)).toMatch(/countersign.*api_key/);
    expect(fails(file, { http: '127.0.0.1:8765' }, env)).toContain('COUNTERSIGN_MCP_TOKEN');
    expect(fails(file, { http: 'nonsense' }, { ...env, COUNTERSIGN_MCP_TOKEN: 'x'.repeat(16) })).toContain('HOST:PORT');
    expect(fails(file, {}, { COUNTERSIGN_URL: env.COUNTERSIGN_URL })).toContain('COUNTERSIGN_API_KEY');
    expect(fails({ mcpServers: {} }, { agent: 'a' }, env)).toContain('at least one upstream');
  });
});
