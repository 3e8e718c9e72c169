import { z } from 'zod';
import type { Decision } from '../../schemas/decision-kind.ts';
import type { DecisionRequest } from '../../schemas/decision.ts';
import { checkRule, lazyVars } from './check-rule.ts';
import { restrictiveness } from './compile.ts';
import { preparePerCallRule } from './per-call-rules.ts';
import { loadSnapshot, policyApplies, type PreparedRule } from './runtime.ts';
import type { Snapshot } from './snapshot.ts';
import { factRiskTags, withRiskTags } from './tool-catalog.ts';

/** What an agent reports the tool returned (POST /v1/decisions/{id}/outcome). */
export const Outcome = z.strictObject({ status: z.enum(['succeeded', 'failed']), output: z.unknown() });
export type Outcome = z.infer<typeof Outcome>;

export type OutputViolation = { policy_id: string; version: number; rule: string; decision: Decision; reason: string };

export type OutcomeEvaluation = {
  /** ALLOW when no output rule applies; otherwise the most restrictive decision of the rules that did. */
  decision: Decision;
  violations: OutputViolation[];
  snapshot_hash: string;
  now: string;
};

/**
 * Output rules (`on: outcome`) checked against a reported outcome. Pure like evaluate: the CEL variables
 * are the request's plus `output` and `status`. An error in a rule is a DENY violation naming the rule.
 * `facts` are the run's recorded evaluation facts: their `tool_catalog` tags are added to the request.
 */
export function evaluateOutcome(snapshot: Snapshot, recorded: DecisionRequest, outcome: Outcome, now: Date, facts: { tool_catalog?: unknown } = {}): OutcomeEvaluation {
  const nowIso = now instanceof Date && !Number.isNaN(now.getTime()) ? now.toISOString() : new Date(0).toISOString();
  const violations: OutputViolation[] = [];
  let request = recorded;
  try {
    // The run's evaluation facts: output rules see the tool catalog's tags, as the request rules did.
    if (facts?.tool_catalog !== undefined) {
      const tags = factRiskTags(facts.tool_catalog);
      if (!tags.ok) throw new Error(tags.error);
      request = withRiskTags(recorded, tags.tags);
    }
    const rt = loadSnapshot(snapshot);
    if (rt.defect !== undefined) {
      violations.push({ policy_id: '', version: 0, rule: '', decision: 'DENY', reason: `${rt.defect}; failing closed` });
    } else {
      const lazy = lazyVars(request, now, { output: outcome.output ?? null, status: outcome.status });
      const perCall: PreparedRule[] = [];
      (Array.isArray(request.policy_rules) ? request.policy_rules : []).forEach((raw, i) => {
        const p = preparePerCallRule(raw, i);
        if (p.ok && p.rule.rule.on === 'outcome') perCall.push(p.rule);
      });
      for (const p of [...rt.outcomeRules, ...perCall]) {
        if (!policyApplies(p.policy, request.agent.id)) continue;
        const c = checkRule(p, request, now, {}, lazy);
        if (c.applies === false) continue;
        violations.push({
          policy_id: p.policy.policy_id,
          version: p.policy.version,
          rule: p.rule.name,
          decision: c.applies === true ? p.rule.decision : 'DENY',
          reason: c.applies === true ? p.rule.reason : `output rule ${p.rule.name} could not be evaluated (${c.error}); failing closed`,
        });
      }
    }
  } catch (err) {
    violations.push({ policy_id: '', version: 0, rule: '', decision: 'DENY', reason: `outcome evaluation failed (${err instanceof Error ? err.message : String(err)}); failing closed` });
  }
  const decision = violations.reduce<Decision>((d, v) => (restrictiveness(v.decision) < restrictiveness(d) ? v.decision : d), 'ALLOW');
  return { decision, violations, snapshot_hash: typeof snapshot?.hash === 'string' ? snapshot.hash : '', now: nowIso };
}
