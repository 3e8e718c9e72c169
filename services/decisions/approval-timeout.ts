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
  if (sec === undefined || !(hasDefaulted(e) || unwritten(e) || unwritten(e.judgment?.if_passed))) return e;
  const out: E = { ...e };
  if (e.approval) out.approval = applyTo(e.approval, sec);
  else if (unwritten(e)) out.approval = builtIn(sec);
  if (e.requirements) out.requirements = e.requirements.map((r) => ({ ...r, approval: applyTo(r.approval, sec) }));
  const passed = e.judgment?.if_passed;
  if (e.judgment && passed?.approval) out.judgment = { ...e.judgment, if_passed: { ...passed, approval: applyTo(passed.approval, sec) } };
  else if (e.judgment && unwritten(passed)) out.judgment = { ...e.judgment, if_passed: { ...passed!, approval: builtIn(sec) } };
  return out;
}

/**
 * A REQUIRE_APPROVAL that no approval block decided (the tenant's default decision, a per-call rule, which never
 * supplies approval settings): the built-in approval (group `approvers`, quorum 1, DENY at the deadline), waiting
 * the tenant's timeout instead of 1h.
 */
const unwritten = (e: Pick<Evaluation, 'decision' | 'approval'> & { requirements?: unknown } | undefined): boolean =>
  e !== undefined && e.decision === 'REQUIRE_APPROVAL' && e.approval === undefined && e.requirements === undefined;

const builtIn = (sec: number): EvaluationApproval => ({
  approvers: [...DEFAULT_APPROVAL.approvers], quorum: DEFAULT_APPROVAL.quorum, timeout: durationText(sec), timeout_sec: sec, on_timeout: DEFAULT_APPROVAL.on_timeout, timeout_defaulted: true,
});

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
