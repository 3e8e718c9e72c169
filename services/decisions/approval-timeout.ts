import type { Evaluation, EvaluationApproval } from '../../schemas/decision.ts';
import { durationText } from '../../schemas/duration.ts';

/**
 * The tenant's approval_timeout stands in for the built-in 1h wherever a rule left its timeout to the default
 * (`timeout_defaulted`, marked at compile time): in the deciding approval block, in every requirement, in the
 * approval a judgment run falls back to. Written timeouts are never touched. Pure: the API applies it before
 * the run's start is signed, `audit replay` applies it again to its re-evaluation with the seconds the signed
 * start recorded (`windows.approval_timeout_sec`), and simulation with the tenant's setting as it stands.
 */
export function withApprovalTimeout<E extends Evaluation>(e: E, sec: number | undefined): E {
  if (sec === undefined || !hasDefaulted(e)) return e;
  const out: E = { ...e };
  if (e.approval) out.approval = applyTo(e.approval, sec);
  if (e.requirements) out.requirements = e.requirements.map((r) => ({ ...r, approval: applyTo(r.approval, sec) }));
  const passed = e.judgment?.if_passed;
  if (e.judgment && passed?.approval) out.judgment = { ...e.judgment, if_passed: { ...passed, approval: applyTo(passed.approval, sec) } };
  return out;
}

const defaultedIn = (a: EvaluationApproval | undefined): boolean => a !== undefined && (a.timeout_defaulted === true || (a.levels?.some((l) => l.timeout_defaulted === true) ?? false));

function hasDefaulted(e: Evaluation): boolean {
  return defaultedIn(e.approval) || defaultedIn(e.judgment?.if_passed.approval) || (e.requirements?.some((r) => defaultedIn(r.approval)) ?? false);
}

function applyTo(a: EvaluationApproval, sec: number): EvaluationApproval {
  const timeout = durationText(sec);
  const out: EvaluationApproval = a.timeout_defaulted ? { ...a, timeout, timeout_sec: sec } : { ...a };
  if (a.levels) out.levels = a.levels.map((l) => (l.timeout_defaulted ? { ...l, timeout, timeout_sec: sec } : l));
  return out;
}
