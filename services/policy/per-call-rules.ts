import { PolicyRule } from '../../schemas/policy.ts';
import { lowerRule } from './lower-rule.ts';
import { prepareRule, type PreparedRule } from './runtime.ts';
import type { CompiledPolicy } from './snapshot.ts';

/**
 * Per-call rules (`policy_rules` in the request) are compiled at evaluation time, through the same
 * lowering as stored rules, and cached by their JSON so a client that sends the same rules on every
 * call compiles them once. They live in a pseudo-policy `request` (version 0).
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
    else result = { ok: true, rule: prepareRule(PER_CALL_SEQ + index, PER_CALL_POLICY, lowered.rule) };
  }
  if (cache.size >= MAX_CACHE) cache.clear();
  cache.set(key, result);
  return result;
}
