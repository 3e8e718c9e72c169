import type { Evaluation, EvaluationApproval } from '../../schemas/decision.ts';
import { durationText } from '../../schemas/duration.ts';
import { DEFAULT_APPROVAL } from './approval-requirements.ts';

/**
 * The tenant's approval_timeout stands in for the built-in 1h wherever a rule left its timeout to the default
 * (`timeout_defaulted`, marked at compile time): in the deciding approval block, in every requirement, in the
 * approval a judgment run falls back to. Written timeouts are never touched. Pure: the API applies it before
 * the run's start is signed, `audit replay` applies it again to its re-evaluation with the seconds the signed
 * start recorded (`windows.approval_timeout_sec`), and simulation with the tenant's setting as it stands.
 */
export function withApprovalTimeout<E extends Evaluation>(e: E, sec: number | undefined): E {
  if (sec === undefined) return e;
  let out = e;
  const approval = timedApproval(e, sec);
  if (approval) out = { ...out, approval };
  if (e.requirements?.some((r) => defaultedIn(r.approval))) {
    out = { ...out, requirements: e.requirements.map((r) => (defaultedIn(r.approval) ? { ...r, approval: applyTo(r.approval, sec) } : r)) };
  }
  const passed = e.judgment?.if_passed;
  const passedApproval = passed && timedApproval(passed, sec);
  if (passedApproval) out = { ...out, judgment: { ...e.judgment!, if_passed: { ...passed, approval: passedApproval } } };
  return out;
}

/**
 * The approval a decision (the run's, or a judgment run's if_passed) waits with, the tenant's timeout standing
 * in; undefined when that changes nothing. A REQUIRE_APPROVAL that no approval block decided (the tenant's
 * default decision, a per-call rule, which never supplies approval settings) gets the built-in approval (group
 * `approvers`, quorum 1, DENY at the deadline) with the tenant's timeout instead of 1h.
 */
function timedApproval(d: Pick<Evaluation, 'decision' | 'approval' | 'requirements'>, sec: number): EvaluationApproval | undefined {
  const a = d.approval;
  if (a === undefined) {
    if (d.decision !== 'REQUIRE_APPROVAL' || d.requirements !== undefined) return undefined;
    const { approvers, quorum, on_timeout } = DEFAULT_APPROVAL;
    return { approvers: [...approvers], quorum, timeout: durationText(sec), timeout_sec: sec, on_timeout, timeout_defaulted: true };
  }
  return defaultedIn(a) ? applyTo(a, sec) : undefined;
}

const defaultedIn = (a: EvaluationApproval): boolean => a.timeout_defaulted === true || (a.levels?.some((l) => l.timeout_defaulted === true) ?? false);

function applyTo(a: EvaluationApproval, sec: number): EvaluationApproval {
  const timeout = durationText(sec);
  const out: EvaluationApproval = a.timeout_defaulted ? { ...a, timeout, timeout_sec: sec } : { ...a };
  if (a.levels) out.levels = a.levels.map((l) => (l.timeout_defaulted ? { ...l, timeout, timeout_sec: sec } : l));
  return out;
}
