// The direct path for small conditions (services/policy/cel-fast.ts) must never disagree with the CEL
// interpreter: whenever it answers, the interpreter gives the same boolean; otherwise it is unsure.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DecisionRequest } from '../../../schemas/decision.ts';
import { UNSURE } from '../../../services/policy/cel-fast.ts';
import { compileCel, fastOf, runCel } from '../../../services/policy/cel.ts';
import { celVariables } from '../../../services/policy/check-rule.ts';
import { evaluate, compile } from '../../../services/policy/index.ts';

const json: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }),
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }),
  fc.constantFrom(0, -0, 500, 500.5, 9007199254740992),
  fc.constantFrom('a', 'b', 'approved', '', 'A', '\u{1F600}', '500'),
  fc.boolean(),
  fc.constant(null),
  fc.constant([1, 'a']),
  fc.constant({ x: 1, y: 'a', z: true }),
);
const names = ['a', 'b', 'amount', 'vendor_status', 'flag', 'missing', 'constructor', 'toString'];
const context = fc.dictionary(fc.constantFrom(...names.filter((n) => n !== 'missing')), json);

const literal = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }).map(String),
  fc.constantFrom('500', '500.0', '2.5', '-3', '-0.0', '9007199254740993', '1u', 'null', 'true', 'false', '"a"', '"approved"', '""', '"\u{1F600}"'),
);
const atom = fc.oneof(
  fc.constantFrom(...names),
  fc.constantFrom('context.a', 'context["b"]', 'a.x', 'a.y', 'a.z', 'a["x"]', 'action.tool', 'agent.id', 'model.provider', 'now', 'a.constructor', 'context.missing'),
  literal,
);
const compare = fc.tuple(atom, fc.constantFrom('==', '!=', '<', '<=', '>', '>='), atom).map(([l, op, r]) => `${l} ${op} ${r}`);
const membership = fc.tuple(atom, fc.constantFrom('["a", "b"]', '["approved"]', '[1, 2]', '[]')).map(([l, r]) => `${l} in ${r}`);
const { expr } = fc.letrec<{ expr: string }>((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    compare,
    membership,
    atom,
    fc.tuple(tie('expr'), fc.constantFrom('&&', '||'), tie('expr')).map(([l, op, r]) => `(${l}) ${op} (${r})`),
    tie('expr').map((e) => `!(${e})`),
  ),
}));

function requestWith(ctx: Record<string, unknown>): DecisionRequest {
  return { agent: { id: 'bot' }, action: { tool: 'pay', operation: 'send' }, context: ctx } as DecisionRequest;
}

describe('the direct path of small CEL conditions', () => {
  it('given random conditions and contexts, when both run, then the direct answer is the interpreter answer or unsure', () => {
    let answered = 0;
    let unsure = 0;
    fc.assert(
      fc.property(expr, context, (e, ctx) => {
        const c = compileCel(e);
        if (!c.ok) return;
        const fast = fastOf(c.program);
        if (fast === undefined) return;
        const now = new Date('2025-01-08T12:00:00Z');
        const request = requestWith(ctx);
        const direct = fast({ request, now, extra: undefined });
        if (direct === UNSURE) {
          unsure++;
          return;
        }
        answered++;
        const interpreted = runCel(c.program, celVariables(request, now));
        expect(interpreted, e).toEqual({ ok: true, value: direct });
      }),
      { numRuns: Number(process.env.CEL_FAST_RUNS ?? 20_000), seed: process.env.CEL_FAST_RUNS ? undefined : 1207 },
    );
    // Both kinds must have been exercised, or the property proved nothing.
    expect(answered).toBeGreaterThan(1000);
    expect(unsure).toBeGreaterThan(1000);
  }, 600_000);

  it('given a condition with a variable shadowed by the outcome, when it runs, then the outcome value is used, as the interpreter does', () => {
    const c = compileCel('status == "ok" && output.total > 3', 'outcome');
    expect(c.ok).toBe(true);
    if (!c.ok) return;
    const fast = fastOf(c.program)!;
    const request = requestWith({ status: 'ignored' });
    const extra = { output: { total: 4 }, status: 'ok' };
    expect(fast({ request, now: new Date(), extra })).toBe(true);
    expect(runCel(c.program, celVariables(request, new Date(), extra))).toEqual({ ok: true, value: true });
  });

  it('given conditions outside its reach (functions, null, timestamps, macros), when compiled, then they have no direct form', () => {
    for (const e of ['size(a) > 2', 'has(a.x)', 'a == null', 'now > timestamp("2025-01-01T00:00:00Z")', '[1,2].exists(x, x > 1)', 'a.startsWith("x")', 'a + 1 > 2', 'a > 9007199254740993'])
      expect(fastOf((compileCel(e) as { ok: true; program: Parameters<typeof fastOf>[0] }).program), e).toBeUndefined();
  });

  it('given a rule whose field has the wrong type, when evaluated, then it still fails closed naming the error', () => {
    const c = compile([{ document: { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'p' }, rules: [{ name: 'big', match: { tool: 'pay' }, condition: 'amount > 500', decision: 'REQUIRE_APPROVAL' }] }, version: 1 }], { circuitBreakers: false, defaultDecision: 'ALLOW' });
    expect(c.ok).toBe(true);
    if (!c.ok) return;
    const now = new Date('2025-01-08T12:00:00Z');
    expect(evaluate(c.snapshot, requestWith({ amount: 900 }), {}, now).decision).toBe('REQUIRE_APPROVAL');
    expect(evaluate(c.snapshot, requestWith({ amount: 100 }), {}, now).decision).toBe('ALLOW');
    const wrong = evaluate(c.snapshot, requestWith({ amount: '900' }), {}, now);
    expect(wrong.decision).toBe('DENY');
    expect(wrong.reason).toMatch(/no such overload/);
  });
});
