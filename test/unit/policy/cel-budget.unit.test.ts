import { describe, expect, it } from 'vitest';
import { DecisionRequest } from '../../../schemas/decision.ts';
import { compile, evaluate, perCallRuleIssues, simulate, type Snapshot } from '../../../services/policy/index.ts';
import { celCostEstimate, compileCel, runCel } from '../../../services/policy/cel.ts';
import { CEL_EVALUATION_BUDGET, isBudgetExceeded, metered, newCelBudget } from '../../../services/policy/cel-budget.ts';

const NOW = new Date('2025-01-08T12:00:00Z');
const strings = (n: number) => Array.from({ length: n }, (_, i) => `s${i}`);
const doc = (rules: unknown[], extra: Record<string, unknown> = {}) => ({ apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'p' }, rules, ...extra });
const req = (r: Record<string, unknown>) => DecisionRequest.parse({ agent: { id: 'bot' }, action: { tool: 't' }, ...r });
function snap(document: unknown, defaultDecision?: 'ALLOW' | 'REQUIRE_APPROVAL'): Snapshot {
  const r = compile([{ document, version: 1 }], defaultDecision ? { defaultDecision, circuitBreakers: false } : { circuitBreakers: false });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.snapshot;
}
function program(expression: string) {
  const c = compileCel(expression);
  if (!c.ok) throw new Error(c.message);
  return c.program;
}

// Given an expression and the request's values: evaluated (with its value) or refused for cost.
const CASES: Array<{ name: string; expr: string; vars: Record<string, unknown>; want: 'evaluated' | 'refused'; value?: boolean }> = [
  { name: 'a plain comparison', expr: 'amount > 500.0', vars: { amount: 650 }, want: 'evaluated', value: true },
  { name: 'contains on a long list (no loop)', expr: 'tools_used.contains("policy_check")', vars: { tools_used: strings(49_000) }, want: 'evaluated', value: false },
  { name: 'one loop over 2,000 items', expr: 'items.all(i, i.price < 100.0)', vars: { items: Array.from({ length: 2000 }, () => ({ price: 5 })) }, want: 'evaluated', value: true },
  { name: 'nested exists over 60', expr: 'xs.exists(a, xs.exists(b, a == b + "x"))', vars: { xs: strings(60) }, want: 'evaluated', value: false },
  { name: 'nested exists over 3,000', expr: 'xs.exists(a, xs.exists(b, a == b + "x"))', vars: { xs: strings(3000) }, want: 'refused' },
  { name: 'nested exists over 49,000', expr: 'xs.exists(a, xs.exists(b, a == b))', vars: { xs: strings(49_000) }, want: 'refused' },
  { name: 'map over map over 49,000', expr: 'xs.map(a, xs.map(b, b)).size() > 0', vars: { xs: strings(49_000) }, want: 'refused' },
  { name: 'a membership test inside a loop', expr: 'xs.exists(a, a in xs)', vars: { xs: strings(10_000) }, want: 'refused' },
  { name: 'one loop over 49,000 objects', expr: 'items.all(i, i.price < 100.0)', vars: { items: Array.from({ length: 49_000 }, () => ({ price: 5 })) }, want: 'refused' },
  { name: 'nested loops over a map\'s keys', expr: 'dyn(m).exists(k, dyn(m).exists(j, k == j + "x"))', vars: { m: Object.fromEntries(strings(5000).map((k) => [k, 1])) }, want: 'refused' },
  {
    name: 'a string doubled by cel.bind 12 times',
    expr: 'cel.bind(a, s + s, cel.bind(b, a + a, cel.bind(c, b + b, cel.bind(d, c + c, cel.bind(e, d + d, cel.bind(f, e + e, cel.bind(g, f + f, cel.bind(h, g + g, cel.bind(i, h + h, cel.bind(j, i + i, cel.bind(k, j + j, k + k == "")))))))))))',
    vars: { s: 'x'.repeat(60_000) }, want: 'refused',
  },
  { name: 'split growth inside a loop', expr: 'xs.exists(a, s.split("").exists(c, c == a))', vars: { xs: strings(1000), s: 'y'.repeat(60_000) }, want: 'refused' },
  { name: 'a path into nested input', expr: 'action.args.items.exists(i, i == "z")', vars: { action: { args: { items: strings(500) } } }, want: 'evaluated', value: false },
];

describe('the CEL cost budget (given an expression and the request\'s values)', () => {
  for (const c of CASES) {
    it(`${c.name}: ${c.want}`, () => {
      const p = program(c.expr);
      const r = runCel(p, c.vars, newCelBudget());
      if (c.want === 'evaluated') expect(r).toEqual({ ok: true, value: c.value });
      else {
        expect(r.ok).toBe(false);
        expect(!r.ok && r.error).toMatch(/CEL cost budget/);
      }
    });
  }

  it('comprehensions nested under a negation count toward the nesting limit', () => {
    const c = compileCel('!(xs.all(a, !(xs.all(b, !(xs.all(c, c == a + b)))))))'.slice(0, -1));
    expect(c.ok).toBe(false);
    expect(!c.ok && c.message).toMatch(/nested at most 2 deep/);
  });

  it('the estimate is an upper bound of what the meter charges', () => {
    for (const c of CASES.filter((x) => x.want === 'evaluated')) {
      const p = program(c.expr);
      const budget = newCelBudget();
      runCel(p, c.vars, budget);
      const estimate = celCostEstimate(p, c.vars);
      if (estimate !== undefined) expect(CEL_EVALUATION_BUDGET - budget.left).toBeLessThanOrEqual(estimate);
    }
  });

  it('at the edge of the budget, what the estimate lets run also fits the meter', () => {
    const shapes: Array<[string, (n: number) => Record<string, unknown>]> = [
      ['xs.exists(a, xs.exists(b, a == b + "x"))', (n) => ({ xs: strings(n) })],
      ['xs.map(a, xs.map(b, b)).size() > 0', (n) => ({ xs: strings(n) })],
      ['xs.all(a, a != "q")', (n) => ({ xs: strings(n) })],
      ['xs.filter(a, a.startsWith("s1")).map(b, b + b).size() >= 0', (n) => ({ xs: strings(n) })],
      ['items.exists(i, i.tags.exists(t, t == "x"))', (n) => ({ items: Array.from({ length: n }, () => ({ tags: strings(20) })) })],
      ['cel.bind(ys, xs.map(a, a + a), ys.exists(y, xs.exists(x, x == y)))', (n) => ({ xs: strings(n) })],
      ['m.exists(k, m.exists(j, k != j && !(k in m)))', (n) => ({ m: Object.fromEntries(strings(n).map((k) => [k, 1])) })],
    ];
    for (const [expr, make] of shapes) {
      const p = program(expr);
      let lo = 1;
      let hi = 50_000;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if ((celCostEstimate(p, make(mid)) ?? 0) <= CEL_EVALUATION_BUDGET) lo = mid;
        else hi = mid - 1;
      }
      const budget = newCelBudget();
      const r = runCel(p, make(lo), budget);
      expect({ expr, n: lo, ok: r.ok }).toEqual({ expr, n: lo, ok: true });
      expect(runCel(p, make(lo * 2), newCelBudget()).ok).toBe(false);
    }
  });

  it('the meter stops a run that spends past the budget, whatever the estimate said', () => {
    const p = program('xs.map(a, xs.map(b, b + a)).size() > 0');
    const vars = { xs: strings(400) };
    const budget = newCelBudget(50_000);
    let thrown: unknown;
    try {
      metered(budget, () => p(vars));
    } catch (err) {
      thrown = err;
    }
    expect(isBudgetExceeded(thrown)).toBe(true);
    expect(budget.left).toBeLessThan(0);
    // Quantifiers catch errors per step and go on: the run still ends refused.
    const q = program('xs.exists(a, xs.exists(b, a == b + "x"))');
    const small = newCelBudget(50_000);
    const r = (() => {
      try {
        return metered(small, () => q(vars));
      } catch (err) {
        return err;
      }
    })();
    expect(isBudgetExceeded(r) || small.left < 0).toBe(true);
  });

  it('is shared by every condition of one evaluation: the rule that finds it spent fails closed, named', () => {
    // Each condition alone fits (about 60% of the budget); the second finds too little left.
    const loop = 'xs.all(a, a != "q" && a != "r")';
    const s = snap(doc([
      { name: 'first', match: { tool: 't' }, condition: loop, decision: 'ALLOW' },
      { name: 'second', match: { tool: 't' }, condition: loop, decision: 'ALLOW' },
    ]));
    const e = evaluate(s, req({ context: { xs: strings(3700) } }), {}, NOW);
    expect(e.decision).toBe('DENY');
    expect(e.matched_rule).toBe('second');
    expect(e.reason).toMatch(/rule second of policy p v1 could not be evaluated \(.*CEL cost budget.*\); failing closed/);
    // With a shorter list both fit, and the allow stands.
    expect(evaluate(s, req({ context: { xs: strings(100) } }), {}, NOW).decision).toBe('ALLOW');
  });

  it('a stored rule over the budget at decision time is a DENY naming the rule', () => {
    const s = snap(doc([{ name: 'quadratic', match: { tool: 't' }, condition: 'xs.exists(a, xs.exists(b, a == b + "x"))', decision: 'ALLOW' }]), 'ALLOW');
    const e = evaluate(s, req({ context: { xs: strings(5000) } }), {}, NOW);
    expect(e.decision).toBe('DENY');
    expect(e.matched_rule).toBe('quadratic');
    expect(e.reason).toMatch(/quadratic.*estimated cost .* is over the CEL cost budget/);
  });

  it('a per-call rule over the budget is refused with its path before evaluation, and fails closed if evaluated anyway', () => {
    const r = req({ context: { xs: strings(3000) }, policy_rules: [{ name: 'ok', match: { tool: 't' }, decision: 'DENY' }, { name: 'slow', condition: 'xs.exists(a, xs.exists(b, a == b))', decision: 'DENY' }] });
    const issues = perCallRuleIssues(r, NOW);
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toEqual(['policy_rules', 1, 'condition']);
    expect(issues[0]!.message).toMatch(/cannot be run within the CEL cost budget/);
    const e = evaluate(snap(doc([]), 'ALLOW'), r, {}, NOW);
    expect(e.decision).toBe('DENY');
    // A deterministic rule's expression is named by its own field.
    const det = req({ context: { xs: strings(3000) }, policy_rules: [{ type: 'deterministic', expr: 'xs.all(a, xs.all(b, a != b + "x"))' }] });
    expect(perCallRuleIssues(det, NOW).map((i) => i.path)).toEqual([['policy_rules', 0, 'expr']]);
  });

  it('simulate refuses a draft rule or a per-call rule over the budget (unprocessable, with the path)', () => {
    const request = { agent: { id: 'bot' }, action: { tool: 't' }, context: { xs: strings(3000) } };
    const draft = doc([{ name: 'slow', match: { tool: 't' }, condition: 'xs.exists(a, xs.exists(b, a == b))', decision: 'DENY' }]);
    const out = simulate({ body: { request, policy: draft }, now: NOW });
    expect(out.ok).toBe(false);
    expect(!out.ok && out.unprocessable).toBe(true);
    expect(!out.ok && out.errors.map((e) => e.path)).toEqual(['policy.rules[0].condition']);
    const perCall = simulate({ body: { request: { ...request, policy_rules: [{ condition: 'xs.map(a, xs.map(b, b)).size() > 0', decision: 'DENY' }] } }, now: NOW });
    expect(!perCall.ok && perCall.errors.map((e) => e.path)).toEqual(['request.policy_rules[0].condition']);
    // The same draft with a short list simulates.
    expect(simulate({ body: { request: { ...request, context: { xs: strings(50) } }, policy: draft }, now: NOW }).ok).toBe(true);
  });
});

describe('per-call rules never supply approval settings', () => {
  const smuggled = { decision: 'REQUIRE_APPROVAL', approval: { approvers: ['nobody'], timeout: '1s', on_timeout: 'ALLOW' } };

  it('an approval block is refused with its path', () => {
    const r = req({ policy_rules: [{ name: 'x', match: { tool: 't' }, ...smuggled }] });
    expect(perCallRuleIssues(r, NOW).map((i) => i.path)).toEqual([['policy_rules', 0, 'approval']]);
  });

  it('a sentence naming approvers is refused; one that names none is taken', () => {
    const named = req({ action: { tool: 'payment_tool', operation: 'Refund' }, policy_rules: [{ text: 'Require nobody approval for refunds' }] });
    expect(perCallRuleIssues(named, NOW).map((i) => i.path)).toEqual([['policy_rules', 0, 'text']]);
    const plain = req({ action: { tool: 'payment_tool', operation: 'Refund' }, policy_rules: [{ text: 'Require approval for refunds' }] });
    expect(perCallRuleIssues(plain, NOW)).toEqual([]);
  });

  it('evaluation never takes approval settings from a per-call rule, even one that got through', () => {
    const s = snap(doc([]), 'REQUIRE_APPROVAL');
    for (const rule of [{ name: 'x', ...smuggled }, { text: 'Require nobody approval for shell_exec' }, { name: 'y', match: { tool: 'shell_exec' }, ...smuggled }]) {
      const e = evaluate(s, req({ action: { tool: 'shell_exec' }, policy_rules: [rule] }), {}, NOW);
      expect(e.decision).toBe('REQUIRE_APPROVAL');
      expect(e.approval).toBeUndefined();
    }
    // A stored rule's approval block still decides when it is the first to require approval.
    const stored = snap(doc([{ name: 'stored', match: { tool: 't' }, decision: 'REQUIRE_APPROVAL', approval: { approvers: ['sre'], on_timeout: 'DENY' } }]));
    const e = evaluate(stored, req({ policy_rules: [{ name: 'x', ...smuggled }] }), {}, NOW);
    expect(e.matched_rule).toBe('stored');
    expect(e.approval?.approvers).toEqual(['sre']);
  });
});
