import type { DecisionRequest } from '../../schemas/decision.ts';
import { checkRule, lazyVars } from './check-rule.ts';
import { counterSpec, requestAmount, type CounterSpec } from './counters.ts';
import { preparePerCallRule } from './per-call-rules.ts';
import { loadSnapshot, policyApplies, type PreparedRule } from './runtime.ts';
import type { Snapshot } from './snapshot.ts';

function limitRules(snapshot: Snapshot, request: DecisionRequest): PreparedRule[] {
  const rt = loadSnapshot(snapshot);
  const perCall = (Array.isArray(request.policy_rules) ? request.policy_rules : [])
    .map((raw, i) => preparePerCallRule(raw, i))
    .flatMap((p) => (p.ok && p.rule.rule.limit !== undefined && p.rule.rule.on === 'request' ? [p.rule] : []));
  return [...rt.limitRules, ...perCall].filter((p) => policyApplies(p.policy, request.agent.id));
}

/**
 * The counters a snapshot needs to decide this request: fetch each (count or sum over its window ending
 * at now) and pass them to evaluate as `facts.counters[key]`. A superset: match keys are checked, the time
 * window and condition are not (they may need `now` and cost nothing to over-fetch).
 */
export function requiredCounters(snapshot: Snapshot, request: DecisionRequest): CounterSpec[] {
  const seen = new Set<string>();
  const out: CounterSpec[] = [];
  for (const p of limitRules(snapshot, request)) {
    if (!p.test(request, new Date(0)) && p.rule.match.time === undefined) continue;
    const spec = counterSpec(p.policy, p.rule, request);
    if (seen.has(spec.key)) continue;
    seen.add(spec.key);
    out.push(spec);
  }
  return out;
}

export type CounterIncrement = CounterSpec & { amount: number };

/**
 * What to add to which counter once this request goes ahead (decision ALLOW or ALLOW_WITH_CONSTRAINTS,
 * or approved): one per limit rule whose match and condition hold, with 1 (rate) or the field's value (cost).
 */
export function counterIncrements(snapshot: Snapshot, request: DecisionRequest, now: Date): CounterIncrement[] {
  const out: CounterIncrement[] = [];
  const lazy = lazyVars(request, now);
  for (const p of limitRules(snapshot, request)) {
    // Check match and condition only: strip the limit so the facts are not needed.
    const check = checkRule({ ...p, rule: { ...p.rule, limit: undefined } }, request, now, {}, lazy);
    if (check.applies !== true) continue;
    const amount = requestAmount(p.rule.limit!, request);
    if (!amount.ok || amount.value === 0) continue;
    out.push({ ...counterSpec(p.policy, p.rule, request), amount: amount.value });
  }
  return out;
}
