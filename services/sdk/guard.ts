import type { DecisionRequestInput, DecisionResult } from '../../schemas/decision.ts';
import type { Countersign } from './client.ts';
import { ArgumentsEdited, ConstraintExceeded, DecisionDenied } from './errors.ts';

/** Turns a tool call's arguments into the decision request (agent, action, context). */
export type Describe<A extends unknown[]> = (...args: A) => DecisionRequestInput;

export type GuardOptions<A extends unknown[] = unknown[]> = {
  /** How long to wait for an approver on REQUIRE_APPROVAL before giving up (ApprovalTimeout), ms. Default 10 min. */
  approvalTimeoutMs?: number;
  /** What to report as the outcome's output. Default: nothing (tool results may hold data the log must not keep). */
  outcomeOutput?: (result: unknown) => unknown;
  /** Called with the decision before the tool runs (logging, tracing). */
  onDecision?: (decision: DecisionResult) => void;
  /**
   * Approve with edit: the tool's arguments from the `action.args` the approvers approved instead (the decision's
   * `edited_args`) and the call's own. Without it, a decision with edited arguments throws ArgumentsEdited and the
   * tool does not run.
   */
  applyEdit?: (editedArgs: Record<string, unknown>, args: A) => A;
};

/**
 * guard(tool, describe): every call asks for a decision first.
 * - DENY: throws DecisionDenied (reason, decision id); the tool does not run.
 * - REQUIRE_APPROVAL: waits for the approvers (up to approvalTimeoutMs, then ApprovalTimeout), then as above.
 * - ALLOW / ALLOW_WITH_CONSTRAINTS: runs the tool, applying the constraints it can: max_runtime_sec becomes
 *   a deadline (ConstraintExceeded; the tool's promise is abandoned, so a tool that can stop should).
 * - Approved with edited arguments: runs the tool with `applyEdit(edited_args, args)`, or throws ArgumentsEdited.
 * Then reports the outcome (succeeded/failed). An outcome report that fails never hides the tool's result.
 */
export function guard<A extends unknown[], R>(client: Countersign, tool: (...args: A) => Promise<R> | R, describe: Describe<A>, opts: GuardOptions<A> = {}): (...args: A) => Promise<R> {
  return async (...args: A): Promise<R> => {
    let decision = await client.decide(describe(...args));
    if (decision.status === 'pending_approval') {
      decision = await client.waitForDecision(decision.decision_id, { timeout: opts.approvalTimeoutMs ?? 10 * 60_000 });
    }
    opts.onDecision?.(decision);
    if (decision.decision === 'DENY' || decision.decision === 'REQUIRE_APPROVAL') {
      throw new DecisionDenied(decision.decision_id, decision.reason, decision.matched_rule, decision.reason_code, decision.policy_id);
    }
    // The tool runs with the arguments the approvers approved, never the ones they changed.
    let callArgs = args;
    if (decision.edited_args !== undefined) {
      if (!opts.applyEdit) throw new ArgumentsEdited(decision.decision_id, decision.edited_args);
      callArgs = opts.applyEdit(decision.edited_args, args);
    }
    const maxRuntime = decision.constraints.max_runtime_sec;
    let result: R;
    try {
      result = await withDeadline(Promise.resolve().then(() => tool(...callArgs)), maxRuntime, decision.decision_id);
    } catch (err) {
      await client.reportOutcome(decision.decision_id, { status: 'failed', output: { error: err instanceof Error ? err.name : 'error' } }).catch(() => undefined);
      throw err;
    }
    const output = opts.outcomeOutput?.(result);
    await client.reportOutcome(decision.decision_id, { status: 'succeeded', output: output ?? null }).catch(() => undefined);
    return result;
  };
}

async function withDeadline<R>(work: Promise<R>, seconds: number | undefined, decisionId: string): Promise<R> {
  if (seconds === undefined) return work;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ConstraintExceeded(decisionId, 'max_runtime_sec', `the tool ran longer than max_runtime_sec=${seconds}`)), seconds * 1000);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
