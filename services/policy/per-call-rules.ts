import { PolicyRule } from '../../schemas/policy.ts';
import type { DecisionRequest } from '../../schemas/decision.ts';
import { celCostEstimate } from './cel.ts';
import { CEL_EVALUATION_BUDGET } from './cel-budget.ts';
import { celVariables } from './check-rule.ts';
import { lowerRule } from './lower-rule.ts';
import { prepareRule, type PreparedRule } from './runtime.ts';
import type { CompiledPolicy } from './snapshot.ts';

/**
 * Per-call rules (`policy_rules` in the request) are compiled at evaluation time, through the same
 * lowering as stored rules, and cached by their JSON so a client that sends the same rules on every
 * call compiles them once. They live in a pseudo-policy `request` (version 0).
 *
 * They only tighten, in every field: a per-call rule counts only when at least as restrictive as the stored set
 * decided, its constraints merge to the tightest, and it never carries approval settings. Who approves, the
 * quorum, the timeout, the escalation and what happens on timeout come from stored policies and the tenant's
 * configuration only: a per-call REQUIRE_APPROVAL that decides gets the defaults of the decision workflow
 * (group `approvers`, quorum 1, one hour, DENY on timeout), whatever its text named.
 */
export const PER_CALL_POLICY: CompiledPolicy = { policy_id: 'request', version: 0, level: 'agent', rules: [] };
/** Per-call rules come after every stored rule and the pack. */
const PER_CALL_SEQ = 1_000_000_000;

export type PreparedPerCall = { ok: true; rule: PreparedRule } | { ok: false; name: string; error: string };

const cache = new Map<string, PreparedPerCall>();
const MAX_CACHE = 5000;

export function preparePerCallRule(raw: unknown, index: number): PreparedPerCall {
  let key: string;
  try {
    key = JSON.stringify(raw) ?? 'undefined';
  } catch {
    return { ok: false, name: `policy_rules[${index}]`, error: 'rule is not JSON' };
  }
  key = `${index}\u0000${key}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  let result: PreparedPerCall;
  const parsed = PolicyRule.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    result = { ok: false, name: `policy_rules[${index}]`, error: `invalid rule: ${issue.path.join('.')} ${issue.message}` };
  } else {
    const lowered = lowerRule(parsed.data, index);
    if (!lowered.ok) result = { ok: false, name: parsed.data.name ?? `policy_rules[${index}]`, error: lowered.errors.map((e) => e.message).join('; ') };
    else {
      // Approval settings never come from the request (a sentence like "Require X approval for ..." names a group).
      const { approval: _ignored, ...rule } = lowered.rule;
      result = { ok: true, rule: prepareRule(PER_CALL_SEQ + index, PER_CALL_POLICY, rule) };
    }
  }
  if (cache.size >= MAX_CACHE) cache.clear();
  cache.set(key, result);
  return result;
}

export type PerCallIssue = { path: Array<string | number>; message: string };

const NO_APPROVAL = 'a per-call rule cannot supply approval settings: who approves, the quorum, the timeout, escalation and on_timeout come from stored policies and the tenant\'s configuration';

/**
 * Why per-call rules cannot be taken as sent, each with its path (`['policy_rules', i, field]`):
 * an `approval` block (or a sentence naming approvers), or a condition whose estimated cost with this request's
 * values is over the CEL budget of an evaluation. Empty when they can be evaluated. The API answers 422 with
 * these; evaluate() never reads approval settings from a per-call rule and fails closed on cost all the same.
 */
export function perCallRuleIssues(request: DecisionRequest, now: Date): PerCallIssue[] {
  const issues: PerCallIssue[] = [];
  const rules: unknown[] = Array.isArray(request.policy_rules) ? request.policy_rules : [];
  let vars: Record<string, unknown> | undefined;
  rules.forEach((raw, i) => {
    const r = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    if (r['approval'] !== undefined) issues.push({ path: ['policy_rules', i, 'approval'], message: NO_APPROVAL });
    const prepared = preparePerCallRule(raw, i);
    if (!prepared.ok) return;
    const lowered = lowerRule(PolicyRule.parse(raw), i);
    const named = lowered.ok ? lowered.rule.approval?.approvers : undefined;
    if (r['approval'] === undefined && named !== undefined && (named.length !== 1 || named[0] !== 'approvers')) {
      issues.push({ path: ['policy_rules', i, r['text'] !== undefined ? 'text' : 'condition'], message: `${NO_APPROVAL}; this rule names approvers ${named.join(', ')}` });
    }
    const program = prepared.rule.program;
    if (program === undefined) return;
    const cost = celCostEstimate(program, (vars ??= celVariables(request, now)));
    if (cost !== undefined && cost > CEL_EVALUATION_BUDGET) {
      const field = r['expr'] !== undefined ? 'expr' : r['condition'] !== undefined && r['effect'] === undefined ? 'condition' : 'text';
      issues.push({ path: ['policy_rules', i, field], message: `the condition cannot be run within the CEL cost budget of an evaluation: its estimated cost with this request's values is ${cost} units, over ${CEL_EVALUATION_BUDGET}` });
    }
  });
  return issues;
}
