import type { Db } from '../services/events/db.ts';
import type { Resolver } from '../services/callbacks/callback-target.ts';
import { askEvaluator } from '../services/judgment/ask-evaluator.ts';
import { loadEvaluator } from '../services/judgment/evaluator-config.ts';
import { checkEvaluatorUrl } from '../services/judgment/evaluator-target.ts';
import type { JudgmentVerdict } from '../schemas/events.ts';
import type { JudgeInput, JudgeResult } from './types.ts';

/** Most judgment rules asked about per request; the rest are left to people (unsure). */
export const MAX_JUDGED_RULES = 10;

/**
 * Asks the tenant's evaluator about each judgment rule of a request, in parallel, and answers the verdicts for
 * the workflow to record (JudgmentEvaluated) before the decision. Idempotent: it writes nothing, and Temporal
 * keeps the answer of a completed attempt, so a replayed run never asks again. The evaluator's faults (no
 * settings any more, a refused address, an error, a timeout, an answer that is no verdict) are verdicts that
 * leave the decision to people; only a failure to read the settings throws (and is retried).
 */
export function makeJudgeRequest(db: Db, opts: { allowHosts: string[]; resolve?: Resolver }) {
  return async function judgeRequest(input: JudgeInput): Promise<JudgeResult> {
    const settings = await loadEvaluator(db, input.tenantId);
    const all = (verdict: JudgmentVerdict['verdict'], reason: string): JudgeResult => ({
      verdicts: input.checklist.map((j) => ({ policy_id: j.policy_id, version: j.version, rule: j.rule, verdict, reason })),
      model: settings?.model ?? '',
    });
    if (settings === null) return all('error', 'the tenant has no evaluator any more');
    const check = await checkEvaluatorUrl(settings.url, { allowHosts: opts.allowHosts, ...(opts.resolve ? { resolve: opts.resolve } : {}) });
    if (!check.ok) return all('error', check.reason);
    const call = { target: check.target, model: settings.model, apiKey: settings.api_key, timeoutMs: settings.timeout_ms };
    const asked = input.checklist.slice(0, MAX_JUDGED_RULES);
    const verdicts = await Promise.all(asked.map((j) => askEvaluator(call, j, input.request)));
    for (const j of input.checklist.slice(MAX_JUDGED_RULES)) {
      verdicts.push({ policy_id: j.policy_id, version: j.version, rule: j.rule, verdict: 'unsure', reason: `not asked: at most ${MAX_JUDGED_RULES} judgment rules are put to the evaluator per request` });
    }
    return { verdicts, model: settings.model };
  };
}
