import type { DecisionRequest } from '../../schemas/decision.ts';
import type { CompiledLimit, CompiledPolicy, CompiledRule } from './snapshot.ts';

/**
 * Rate and cost limits are decided from counter values the caller passes in as facts; evaluation never
 * reads a counter itself (it is pure, and replay must re-derive the decision from the recorded facts).
 * A counter is identified by its key: what is counted (the rule), for whom (the agent, or the whole
 * tenant the snapshot belongs to) and over which sliding window.
 */
export type Facts = {
  /** Counter values by key: the number of counted requests (rate) or the sum of the field (cost) in the window ending now. */
  counters?: Record<string, number>;
  /** The tenant's tool catalog as consulted: its version, hash and the risk tags it gave this request (schemas/tool-catalog.ts). */
  tool_catalog?: { version: number; hash: string; risk_tags: string[] };
  [fact: string]: unknown;
};

export type CounterSpec = {
  key: string;
  kind: CompiledLimit['kind'];
  /** The window as written (e.g. 1d) and in seconds: count the events in [now - window_sec, now). */
  window: string;
  window_sec: number;
  per: CompiledLimit['per'];
  /** For cost limits: the context field whose values are summed. */
  field?: string;
  policy_id: string;
  rule: string;
};

export function counterKey(policy: Pick<CompiledPolicy, 'policy_id'>, rule: Pick<CompiledRule, 'name'>, limit: CompiledLimit, request: DecisionRequest): string {
  const who = limit.per === 'agent' ? `agent=${request.agent.id}` : 'tenant';
  const what = limit.kind === 'cost' ? `cost(${limit.field ?? 'amount'})` : 'rate';
  return `${what}:${policy.policy_id}/${rule.name}:${who}:${limit.window}`;
}

export function counterSpec(policy: CompiledPolicy, rule: CompiledRule, request: DecisionRequest): CounterSpec {
  const limit = rule.limit!;
  const spec: CounterSpec = {
    key: counterKey(policy, rule, limit, request),
    kind: limit.kind,
    window: limit.window,
    window_sec: limit.window_sec,
    per: limit.per,
    policy_id: policy.policy_id,
    rule: rule.name,
  };
  if (limit.field !== undefined) spec.field = limit.field;
  return spec;
}

/** The counted amount of one request: 1 for a rate, the field's value for a cost (absent: 0). */
export function requestAmount(limit: CompiledLimit, request: DecisionRequest): { ok: true; value: number } | { ok: false; error: string } {
  if (limit.kind === 'rate') return { ok: true, value: 1 };
  const field = limit.field ?? 'amount';
  const v: unknown = (request.context as Record<string, unknown> | undefined)?.[field];
  if (v === undefined) return { ok: true, value: 0 };
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return { ok: false, error: `context field ${field} must be a non-negative number for a cost limit` };
  return { ok: true, value: v };
}

/** The current value of a counter from the facts, or why it cannot be used. */
export function counterValue(facts: Facts, key: string): { ok: true; value: number } | { ok: false; error: string } {
  const counters = facts.counters;
  const v: unknown = counters !== null && typeof counters === 'object' ? counters[key] : undefined;
  if (v === undefined) return { ok: false, error: `fact counters["${key}"] was not supplied` };
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return { ok: false, error: `fact counters["${key}"] must be a non-negative number` };
  return { ok: true, value: v };
}
