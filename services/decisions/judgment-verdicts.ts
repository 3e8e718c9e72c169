import type { Constraints, Decision, Evaluation, EvaluationApproval } from '../../schemas/decision.ts';
import type { JudgmentVerdict } from '../../schemas/events.ts';

/**
 * What a run's evaluation becomes once the tenant's evaluator has given its verdicts on the request's judgment
 * rules. Pure: the workflow applies it to the verdicts it recorded, and the auditor's replay re-derives the
 * same outcome from the recorded JudgmentEvaluated event, never asking the evaluator again.
 *
 * - a `fail` of a rule whose effect is DENY: DENY, naming that rule and the evaluator's reason;
 * - any other `fail` (effect REQUIRE_APPROVAL), an `unsure`, an `error` or a rule without a verdict: people decide
 *   (the approval the evaluation asked for, with the checklist);
 * - every rule `pass`: what the other rules decided (`judgment.if_passed`), which may still be an approval.
 */
export type AfterVerdicts =
  | { kind: 'final'; decision: Decision; reason: string; matched_rule: string | null; constraints: Constraints }
  | { kind: 'approval'; approval?: EvaluationApproval | undefined; reason: string };

export function afterVerdicts(e: Evaluation, verdicts: JudgmentVerdict[]): AfterVerdicts {
  const checklist = e.judgment?.checklist ?? [];
  const verdictOf = (j: { policy_id: string; version: number; rule: string }) =>
    verdicts.find((v) => v.policy_id === j.policy_id && v.version === j.version && v.rule === j.rule);
  for (const j of checklist) {
    const v = verdictOf(j);
    if (v?.verdict === 'fail' && j.effect === 'DENY') {
      return { kind: 'final', decision: 'DENY', reason: `judgment rule ${j.rule} of policy ${j.policy_id} v${j.version} failed (evaluator): ${v.reason}`, matched_rule: j.rule, constraints: {} };
    }
  }
  const open = checklist.filter((j) => verdictOf(j)?.verdict !== 'pass');
  if (open.length > 0 || e.judgment === undefined) {
    const why = open.map((j) => `${j.rule}: ${verdictOf(j)?.verdict ?? 'no verdict'}`).join('; ');
    return { kind: 'approval', approval: e.approval, reason: `${e.reason} (the evaluator left it to people: ${why || 'no judgment'})` };
  }
  const p = e.judgment.if_passed;
  if (p.decision === 'REQUIRE_APPROVAL') return { kind: 'approval', approval: p.approval, reason: p.reason };
  return { kind: 'final', decision: p.decision, reason: p.reason, matched_rule: p.matched_rule, constraints: p.constraints };
}
