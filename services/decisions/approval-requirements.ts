import type { Evaluation, EvaluationApproval } from '../../schemas/decision.ts';
import type { EventData, RoundRequirement } from '../../schemas/events.ts';
import type { RequirementState, Round } from './run-view.ts';

/**
 * Rounds of requirements: when several matched rules require approval, or one declares an escalation ladder,
 * a round holds one requirement per rule, each a ladder of levels (groups, quorum, timeout). Every requirement
 * must be satisfied; one rejection ends the round; a requirement whose last level ends unanswered falls back to
 * its on_timeout (DENY ends the round, ALLOW waives that requirement). Pure: the decider, `evolve` and the
 * simulation all use these, so they cannot disagree about who is asked when.
 */

/** Approval settings when the deciding rule names none (a rule always names them once compiled; a test may not). */
export const DEFAULT_APPROVAL = { approvers: ['approvers'], quorum: 1, timeout_sec: 3600, on_timeout: 'DENY' } as const;

export type Ladder = Omit<RoundRequirement, 'id' | 'deadline'>;

/** Whether a run's first round is a round of requirements: only when the policy asked for more than one level or rule. */
export const usesRequirements = (e: Evaluation): boolean => e.requirements !== undefined || e.approval?.levels !== undefined;

/**
 * One approval block as a ladder. The single-level form keeps its meaning exactly: its approvers until
 * escalate_after (else timeout), then, with escalate_to, those groups too for another timeout.
 */
export function ladderOf(a: EvaluationApproval | undefined): Pick<Ladder, 'levels' | 'on_timeout'> {
  if (a?.levels !== undefined) return { levels: a.levels.map((l) => ({ groups: [...l.approvers], quorum: l.quorum, timeout_sec: l.timeout_sec })), on_timeout: a.on_timeout };
  const timeout = a?.timeout_sec ?? DEFAULT_APPROVAL.timeout_sec;
  const quorum = a?.quorum ?? DEFAULT_APPROVAL.quorum;
  const levels: Ladder['levels'] = [{ groups: a?.approvers.length ? [...a.approvers] : [...DEFAULT_APPROVAL.approvers], quorum, timeout_sec: a?.escalate_after_sec ?? timeout }];
  if (a?.escalate_to?.length) levels.push({ groups: [...a.escalate_to], quorum, timeout_sec: timeout });
  return { levels, on_timeout: a?.on_timeout ?? DEFAULT_APPROVAL.on_timeout };
}

/** Every requirement a REQUIRE_APPROVAL evaluation carries, in evaluation order. */
export function requirementsOf(e: Evaluation): Ladder[] {
  if (e.requirements !== undefined) return e.requirements.map((r) => ({ policy_id: r.policy_id, version: r.version, rule: r.rule, ...ladderOf(r.approval) }));
  const deciding = e.matched_rules.find((m) => m.rule === e.matched_rule && m.decision === 'REQUIRE_APPROVAL');
  return [{ policy_id: deciding?.policy_id ?? '', version: deciding?.version ?? 0, rule: e.matched_rule ?? '', ...ladderOf(e.approval) }];
}

const union = (lists: string[][]): string[] => [...new Set(lists.flat())];

/** Who may answer for a requirement at a level: that level's groups and every earlier level's. */
export const eligibleGroups = (r: Pick<RoundRequirement, 'levels'>, level: number): string[] => union(r.levels.slice(0, level + 1).map((l) => l.groups));

/** Round 1's requirements, each at its first level from `now`, and the round's summary fields. */
export function firstRequirements(e: Evaluation, now: Date): { requirements: RoundRequirement[]; groups: string[]; quorum: number; deadline: string; level_timeout_sec: number; on_timeout: 'DENY' | 'ALLOW' } {
  const requirements = requirementsOf(e).map((l, i) => ({ id: i + 1, ...l, deadline: new Date(now.getTime() + l.levels[0]!.timeout_sec * 1000).toISOString() }));
  return {
    requirements,
    groups: union(requirements.map((r) => r.levels[0]!.groups)),
    quorum: requirements.reduce((n, r) => n + r.levels[0]!.quorum, 0),
    deadline: requirements.map((r) => r.deadline).sort()[0]!,
    level_timeout_sec: Math.min(...requirements.map((r) => r.levels[0]!.timeout_sec)),
    on_timeout: requirements.some((r) => r.on_timeout === 'DENY') ? 'DENY' : 'ALLOW',
  };
}

export const openRequirements = (reqs: RoundRequirement[]): RequirementState[] => reqs.map((r) => ({ ...r, level: 0, approvals: [], status: 'open' }));

const satisfied = (r: RequirementState): RequirementState =>
  (r.status === 'open' && r.approvals.length >= r.levels[r.level]!.quorum ? { ...r, status: 'approved' } : r);

/** The open requirements an approver of these groups answers for. */
export const requirementsFor = (round: Round, groups: string[]): number[] =>
  (round.requirements ?? []).filter((r) => r.status === 'open' && eligibleGroups(r, r.level).some((g) => groups.includes(g))).map((r) => r.id);

export const answerRequirements = (reqs: RequirementState[], approverId: string, ids: number[]): RequirementState[] =>
  reqs.map((r) => (ids.includes(r.id) && r.status === 'open' ? satisfied({ ...r, approvals: [...r.approvals, approverId] }) : r));

export const escalateRequirements = (reqs: RequirementState[], moves: NonNullable<EventData<'ApprovalEscalated'>['requirements']>): RequirementState[] =>
  reqs.map((r) => {
    const m = moves.find((x) => x.id === r.id);
    return m && r.status === 'open' ? satisfied({ ...r, level: m.level, deadline: m.deadline }) : r;
  });

export const expireRequirements = (reqs: RequirementState[], ids: number[]): RequirementState[] =>
  reqs.map((r) => (ids.includes(r.id) && r.status === 'open' ? { ...r, status: r.on_timeout === 'ALLOW' ? 'waived' : 'expired' } : r));

/**
 * The round as its requirements leave it: rejected stays rejected; one expired (fallback DENY) expires it to
 * DENY; all approved approves it; all satisfied with one waived expires it to ALLOW; else it stays open until
 * its earliest open deadline, answerable by every requirement's groups.
 */
export function closeRequirements(round: Round): Round {
  const reqs = round.requirements!;
  const groups = union(reqs.map((r) => eligibleGroups(r, r.level)));
  if (round.status !== 'open') return { ...round, groups };
  if (reqs.some((r) => r.status === 'expired')) return { ...round, groups, status: 'expired', fallback: 'DENY' };
  const open = reqs.filter((r) => r.status === 'open');
  if (open.length === 0) return reqs.some((r) => r.status === 'waived') ? { ...round, groups, status: 'expired', fallback: 'ALLOW' } : { ...round, groups, status: 'approved' };
  return { ...round, groups, deadline: open.map((r) => r.deadline).sort()[0]! };
}

/**
 * What a deadline does to a round of requirements: those whose level ended move to their next level, and those
 * at their last level run out (ApprovalExpired names them). Escalations are not recorded when a DENY fallback
 * ends the round anyway.
 */
export function requirementsAtDeadline(round: Round, now: Date): { escalated?: EventData<'ApprovalEscalated'>; expired?: EventData<'ApprovalExpired'> } {
  const due = round.requirements!.filter((r) => r.status === 'open' && now.getTime() >= Date.parse(r.deadline));
  const runOut = due.filter((r) => r.level + 1 >= r.levels.length);
  const move = due.filter((r) => r.level + 1 < r.levels.length);
  const out: { escalated?: EventData<'ApprovalEscalated'>; expired?: EventData<'ApprovalExpired'> } = {};
  const denies = runOut.some((r) => r.on_timeout === 'DENY');
  if (move.length > 0 && !denies) {
    const moves = move.map((r) => ({ id: r.id, level: r.level + 1, deadline: new Date(now.getTime() + r.levels[r.level + 1]!.timeout_sec * 1000).toISOString() }));
    const after = closeRequirements({ ...round, requirements: escalateRequirements(round.requirements!, moves) });
    out.escalated = { round: round.round, level: round.level + 1, groups: after.groups, deadline: after.deadline, requirements: moves };
  }
  if (runOut.length > 0) out.expired = { round: round.round, fallback: denies ? 'DENY' : 'ALLOW', at: now.toISOString(), requirements: runOut.map((r) => r.id) };
  return out;
}

/** Groups to notify after a deadline moved a round on: those its escalated requirements added; null when none escalated. */
export function escalationGroups(before: Round, after: Round): string[] | null {
  if (after.status !== 'open' || after.level <= before.level) return null;
  if (!before.requirements || !after.requirements) return before.escalate_to;
  const added = after.requirements.filter((r) => r.level > before.requirements!.find((b) => b.id === r.id)!.level).map((r) => r.levels[r.level]!.groups);
  return union(added);
}

/** A requirement as the API, the inbox and the messages show it: where it stands now. */
export type RequirementSummary = {
  id: number;
  policy_id: string;
  version: number;
  rule: string;
  status: RequirementState['status'];
  /** 0-based level it is at, of `levels` levels. */
  level: number;
  levels: number;
  /** Who may answer for it now (its levels' groups so far), how many approvals it needs now, and has. */
  groups: string[];
  quorum: number;
  approvals: number;
  deadline: string;
  on_timeout: 'DENY' | 'ALLOW';
};

export const requirementSummaries = (round: Round): RequirementSummary[] | undefined => round.requirements?.map((r) => ({
  id: r.id, policy_id: r.policy_id, version: r.version, rule: r.rule, status: r.status, level: r.level, levels: r.levels.length,
  groups: eligibleGroups(r, r.level), quorum: r.levels[r.level]!.quorum, approvals: r.approvals.length, deadline: r.deadline, on_timeout: r.on_timeout,
}));

/** One line per requirement, for Slack and email: every requirement the round waits for, and where each stands. */
export const requirementLines = (round: Round): string[] => (requirementSummaries(round) ?? []).map((s) =>
  `${s.policy_id}/${s.rule}: ${s.groups.join(', ')}, ${s.approvals} of ${s.quorum} approvals, ${s.status === 'open' ? `level ${s.level + 1} of ${s.levels} until ${s.deadline}` : s.status}`);

/** The latest a round of requirements can still close: each open requirement's deadline plus its levels still to come. */
export const finalDeadlineOf = (round: Round): string => {
  const ends = round.requirements!.filter((r) => r.status === 'open')
    .map((r) => Date.parse(r.deadline) + r.levels.slice(r.level + 1).reduce((n, l) => n + l.timeout_sec * 1000, 0));
  return ends.length ? new Date(Math.max(...ends)).toISOString() : round.deadline;
};

/** The decision result's `approval_requirements`: the approval round's requirements, only for a round that has them. */
export function approvalRequirementsOf(view: { rounds: Round[] }): { approval_requirements?: RequirementSummary[] } {
  const round = view.rounds.find((r) => r.kind === 'approval' && r.requirements);
  return round ? { approval_requirements: requirementSummaries(round)! } : {};
}

/** One level of a requirement's ladder as simulation shows it, if nobody answers before its deadline. */
export type RouteLevel = { level: number; groups: string[]; eligible_groups: string[]; quorum: number; starts_at: string; deadline: string };
export type RouteRequirement = { id: number; policy_id: string; version: number; rule: string; on_timeout: 'DENY' | 'ALLOW'; levels: RouteLevel[]; final_deadline: string };

/**
 * Who would be asked, and until when, for a REQUIRE_APPROVAL evaluation started at `now`: each requirement's
 * levels in turn (as the run would open them: round of requirements or not, the ladder is the same), if nobody
 * answers. The people in those groups are the caller's to add (they live in the database).
 */
export function approvalRoute(e: Evaluation, now: Date): RouteRequirement[] {
  return requirementsOf(e).map((r, i) => {
    let t = now.getTime();
    const levels = r.levels.map((l, level) => {
      const starts = t;
      t += l.timeout_sec * 1000;
      return { level, groups: l.groups, eligible_groups: eligibleGroups(r, level), quorum: l.quorum, starts_at: new Date(starts).toISOString(), deadline: new Date(t).toISOString() };
    });
    return { id: i + 1, policy_id: r.policy_id, version: r.version, rule: r.rule, on_timeout: r.on_timeout, levels, final_deadline: new Date(t).toISOString() };
  });
}
