import type { DecisionRequest } from '../../schemas/decision.ts';
import { runCel } from './cel.ts';
import { counterKey, counterValue, requestAmount, type Facts } from './counters.ts';
import type { PreparedRule } from './runtime.ts';

/** Whether a rule applies, or the error that makes it fail closed. */
export type RuleCheck = { applies: false } | { applies: true } | { applies: 'error'; error: string };

const NO: RuleCheck = { applies: false };
const YES: RuleCheck = { applies: true };

/**
 * Match, then condition, then limit. `vars` is built lazily by the caller, once per evaluation, and only
 * if some rule has a condition: most requests never pay for it.
 */
export function checkRule(p: PreparedRule, request: DecisionRequest, now: Date, facts: Facts, vars: () => Record<string, unknown>): RuleCheck {
  if (!p.test(request, now)) return NO;
  if (p.programError !== undefined) return { applies: 'error', error: p.programError };
  if (p.program !== undefined) {
    const r = runCel(p.program, vars());
    if (!r.ok) return { applies: 'error', error: r.error };
    if (!r.value) return NO;
  }
  const limit = p.rule.limit;
  if (limit !== undefined) {
    const current = counterValue(facts, counterKey(p.policy, p.rule, limit, request));
    if (!current.ok) return { applies: 'error', error: current.error };
    const amount = requestAmount(limit, request);
    if (!amount.ok) return { applies: 'error', error: amount.error };
    // The rule applies when this request would take the window's total over max.
    if (current.value + amount.value <= limit.max) return NO;
  }
  return YES;
}

/** CEL variables: context fields at top level, then the reserved names (which win over context fields). */
export function celVariables(request: DecisionRequest, now: Date, extra?: Record<string, unknown>): Record<string, unknown> {
  const context = (request.context ?? {}) as Record<string, unknown>;
  return {
    ...context,
    context,
    action: request.action,
    agent: request.agent,
    model: request.model ?? {},
    now,
    ...extra,
  };
}
