import type { Evaluation } from '../../schemas/decision.ts';
import type { EventData } from '../../schemas/events.ts';
import { afterVerdicts } from './judgment-verdicts.ts';
import type { ApprovalEdit } from '../../schemas/events.ts';
import { checkEditNoLooser, editedConstraints, editsAllowed, MAX_EDITED_ARGS_CHARS } from './approval-edit.ts';
import { checkAnswer, evolve, openRound, type AnswerCommand, type Round, type RunEvent, type RunView } from './run-view.ts';
import { DEFAULT_APPROVAL, firstRequirements, requirementsAtDeadline, requirementsFor, usesRequirements } from './approval-requirements.ts';

export { DEFAULT_APPROVAL };

/**
 * The rules of one decision run as a pure decider: `decide(state, command, now)` answers the events the command
 * causes, or a refusal naming why not. The state is what `evolve` folds from the run's events; time is an
 * input. Pure and deterministic: the workflow calls it (in its validators, for the refusal, and in its handlers,
 * for the events), and nothing here does I/O or reads a clock.
 */

/** A run's state, as the decider sees it: not started yet, or one of the three stages of a started run. */
export type RunState =
  | { status: 'not_started' }
  | (RunView & { status: 'requested' })
  | (RunView & { status: 'pending_approval' })
  | (RunView & { status: 'final' });

export const runState = (view: RunView | null): RunState => (view ?? { status: 'not_started' });

/** Who may lift a DENY and for how long: the tenant's windows, as the run was started with them. */
export type OverrideSettings = { groups: string[]; timeout_sec: number; window_sec: number };

export type StartRun = {
  type: 'StartRun';
  /** awaiting_judgment: the tenant's evaluator is asked first, so a REQUIRE_APPROVAL opens no round yet. */
  data: { requested: EventData<'DecisionRequested'>; evaluated: EventData<'PolicyEvaluated'>; awaiting_judgment?: boolean };
};
/** The evaluator's verdicts on the judgment rules: recorded, then the run goes on as they say (afterVerdicts). */
export type RecordVerdicts = { type: 'RecordVerdicts'; data: EventData<'JudgmentEvaluated'> };
export type AnswerRound = {
  type: 'AnswerRound';
  /** The answer as checkAnswer reads it (the approver's roles and groups as the database confirms them now). */
  data: AnswerCommand & {
    channel: EventData<'ApprovalGranted'>['channel'];
    comment?: string | undefined;
    /** An approval of changed arguments (approve with edit), evaluated by the API against the run's snapshot. */
    edit?: ApprovalEdit | undefined;
  };
};
/** A round's deadline passed without it closing: it escalates once if it may, then expires. */
export type ReachDeadline = { type: 'ReachDeadline'; data: { round: number } };
export type RequestOverride = {
  type: 'RequestOverride';
  data: {
    requested_by: string;
    requester_roles: string[];
    justification: string;
    settings: OverrideSettings;
    /** When the run became final, or null while the task that made it final is still under way. */
    final_at: string | null;
    /** At most this many override requests per run. */
    max_overrides: number;
  };
};
export type ReportOutcome = {
  type: 'ReportOutcome';
  data: {
    reported_by: string;
    status: 'succeeded' | 'failed';
    output_digest: string;
    violations: Array<{ policy_id: string; rule: string; reason: string }>;
  };
};
/** What the notify activity reports back: one delivery per recipient and channel. */
export type RecordDeliveries = {
  type: 'RecordDeliveries';
  data: {
    round: number;
    purpose: 'request' | 'escalation' | 'reminder';
    deliveries: Array<{ channel: EventData<'NotificationSent'>['channel']; recipient: string; error?: string | undefined; queued?: boolean | undefined }>;
  };
};

export type RunCommand = StartRun | AnswerRound | ReachDeadline | RequestOverride | ReportOutcome | RecordDeliveries | RecordVerdicts;

export type Decided = { ok: true; events: RunEvent[] } | { ok: false; reason: string };

const refused = (reason: string): Decided => ({ ok: false, reason });
const accepted = (events: RunEvent[]): Decided => ({ ok: true, events });
const ev = <T extends RunEvent['type']>(type: T, data: EventData<T>) => ({ type, data }) as RunEvent;
const iso = (ms: number) => new Date(ms).toISOString();

export function decide(state: RunState, command: RunCommand, now: Date): Decided {
  switch (command.type) {
    case 'StartRun':
      return startRun(state, command.data, now);
    case 'AnswerRound':
      return answerRound(state, command.data, now);
    case 'ReachDeadline':
      return reachDeadline(state, command.data.round, now);
    case 'RequestOverride':
      return requestOverride(state, command.data, now);
    case 'ReportOutcome':
      return reportOutcome(state, command.data, now);
    case 'RecordDeliveries':
      return recordDeliveries(state, command.data);
    case 'RecordVerdicts':
      return recordVerdicts(state, command.data, now);
    default: {
      const never: never = command;
      return never;
    }
  }
}

/** The first round of a REQUIRE_APPROVAL, from the deciding rule's approval settings. */
function firstRound(requested: EventData<'DecisionRequested'>, e: Evaluation, now: Date, approval = e.approval): EventData<'ApprovalRequested'> {
  const a = approval;
  const timeout = a?.timeout_sec ?? DEFAULT_APPROVAL.timeout_sec;
  const first = a?.escalate_after_sec ?? timeout;
  return {
    round: 1, kind: 'approval', groups: a?.approvers.length ? a.approvers : [...DEFAULT_APPROVAL.approvers], quorum: a?.quorum ?? DEFAULT_APPROVAL.quorum,
    deadline: iso(now.getTime() + first * 1000), escalate_to: a?.escalate_to ?? [], level_timeout_sec: timeout,
    on_timeout: a?.on_timeout ?? DEFAULT_APPROVAL.on_timeout, requested_by: requested.requested_by, args_digest: requested.args_digest,
    snapshot_hash: e.snapshot_hash,
  };
}

/** The first round when several rules require approval or one declares a ladder: one requirement per rule. */
function firstRoundOfRequirements(requested: EventData<'DecisionRequested'>, e: Evaluation, now: Date): EventData<'ApprovalRequested'> {
  const f = firstRequirements(e, now);
  return {
    round: 1, kind: 'approval', groups: f.groups, quorum: f.quorum, deadline: f.deadline, escalate_to: [], level_timeout_sec: f.level_timeout_sec,
    on_timeout: f.on_timeout, requested_by: requested.requested_by, args_digest: requested.args_digest, snapshot_hash: e.snapshot_hash, requirements: f.requirements,
  };
}

function startRun(state: RunState, d: StartRun['data'], now: Date): Decided {
  if (state.status !== 'not_started') return refused('the run has already started');
  const e = d.evaluated.evaluation;
  if (d.awaiting_judgment === true && e.decision === 'REQUIRE_APPROVAL' && e.judgment !== undefined) {
    return accepted([ev('DecisionRequested', d.requested), ev('PolicyEvaluated', d.evaluated)]);
  }
  const third = e.decision === 'REQUIRE_APPROVAL'
    ? ev('ApprovalRequested', usesRequirements(e) ? firstRoundOfRequirements(d.requested, e, now) : firstRound(d.requested, e, now))
    : ev('DecisionFinalized', { decision: e.decision, reason: e.reason, matched_rule: e.matched_rule, constraints: e.constraints, via: 'policy' });
  return accepted([ev('DecisionRequested', d.requested), ev('PolicyEvaluated', d.evaluated), third]);
}

/** How a round that just closed ends the run: the final decision of an approval round, the override's outcome. */
function closeRound(view: RunView, r: Round, now: Date): RunEvent[] {
  const e = view.evaluation!;
  if (r.kind === 'approval') {
    if (r.status === 'approved' && r.edit) return [approvedWithEdit(e, r.edit)];
    if (r.status === 'approved') {
      const decision = Object.keys(e.constraints).length > 0 ? 'ALLOW_WITH_CONSTRAINTS' : 'ALLOW';
      return [ev('DecisionFinalized', { decision, reason: `approved: ${e.reason}`, matched_rule: e.matched_rule, constraints: e.constraints, via: 'approval' })];
    }
    if (r.status === 'rejected') {
      const by = r.rejections[0];
      return [ev('DecisionFinalized', { decision: 'DENY', reason: `rejected by ${by?.approver_id}${by?.comment ? `: ${by.comment}` : ''}`, matched_rule: e.matched_rule, constraints: {}, via: 'rejection' })];
    }
    const fallback = r.fallback ?? r.on_timeout;
    return [ev('DecisionFinalized', { decision: fallback, reason: `no answer before ${r.deadline}: fallback ${fallback}`, matched_rule: e.matched_rule, constraints: fallback === 'DENY' ? {} : e.constraints, via: 'expiry' })];
  }
  const at = now.toISOString();
  if (r.status === 'approved') {
    return [
      ev('OverrideGranted', { round: r.round, reason: `approved by ${r.approvals.map((a) => a.approver_id).join(', ')}`, at }),
      ev('DecisionFinalized', { decision: 'ALLOW', reason: `override granted: ${r.justification ?? ''}`, matched_rule: e.matched_rule, constraints: e.constraints, via: 'override' }),
    ];
  }
  const why = r.status === 'rejected' ? `rejected by ${r.rejections[0]?.approver_id}` : `no answer before ${r.deadline}`;
  return [ev('OverrideDenied', { round: r.round, reason: why, at })];
}

/** The events, then how the round they closed (if they closed it) ends the run. */
function withClosing(view: RunView, round: number, events: RunEvent[], now: Date): RunEvent[] {
  let after: RunView | null = view;
  for (const e of events) after = evolve(after, e);
  const r = after!.rounds.find((x) => x.round === round)!;
  return r.status === 'open' ? events : [...events, ...closeRound(after!, r, now)];
}

function answerRound(state: RunState, a: AnswerRound['data'], now: Date): Decided {
  if (state.status === 'not_started') return refused('the run has not been recorded yet');
  const check = checkAnswer(state, a, now);
  if (!check.ok) return refused(check.reason);
  const bad = checkApprovalEdit(state, check.round, a.verdict, a.edit);
  if (bad !== null) return refused(bad);
  const answer = {
    round: a.round, approver_id: a.approver_id, channel: a.channel, at: now.toISOString(), ...(a.comment ? { comment: a.comment } : {}), ...(a.edit ? { edit: a.edit } : {}),
    ...(check.round.requirements ? { requirements: requirementsFor(check.round, a.approver_groups) } : {}),
    ...(check.delegation ? { on_behalf_of: check.delegation.from, delegation_id: check.delegation.id } : {}),
  };
  return accepted(withClosing(state, a.round, [ev(a.verdict === 'approve' ? 'ApprovalGranted' : 'ApprovalRejected', answer)], now));
}

function reachDeadline(state: RunState, n: number, now: Date): Decided {
  if (state.status === 'not_started') return refused('the run has not been recorded yet');
  const r = state.rounds.find((x) => x.round === n);
  if (!r) return refused(`round ${n} does not exist`);
  if (r.status !== 'open') return refused(`round ${n} is already ${r.status}`);
  if (now.getTime() < Date.parse(r.deadline)) return refused(`round ${n} is open until ${r.deadline}`);
  if (r.requirements) {
    const { escalated, expired } = requirementsAtDeadline(r, now);
    return accepted(withClosing(state, n, [...(escalated ? [ev('ApprovalEscalated', escalated)] : []), ...(expired ? [ev('ApprovalExpired', expired)] : [])], now));
  }
  if (r.level === 0 && r.escalate_to.length > 0) {
    const groups = [...new Set([...r.groups, ...r.escalate_to])];
    return accepted([ev('ApprovalEscalated', { round: n, level: 1, groups, deadline: iso(now.getTime() + r.level_timeout_sec * 1000) })]);
  }
  return accepted(withClosing(state, n, [ev('ApprovalExpired', { round: n, fallback: r.on_timeout, at: now.toISOString() })], now));
}

function requestOverride(state: RunState, o: RequestOverride['data'], now: Date): Decided {
  if (state.status !== 'final' || state.decision !== 'DENY') return refused('only a final DENY can be overridden');
  if (openRound(state)) return refused('an override request is already waiting for approval');
  if (state.overrides.length >= o.max_overrides) return refused(`at most ${o.max_overrides} override requests per decision`);
  if (o.final_at !== null && now.getTime() > Date.parse(o.final_at) + o.settings.window_sec * 1000) return refused('the override window has closed');
  if (o.requested_by !== state.requested_by && !o.requester_roles.includes('admin')) return refused('only the requesting agent or an admin may ask for an override');
  const round = state.rounds.length + 1;
  const at = now.toISOString();
  const deadline = iso(now.getTime() + o.settings.timeout_sec * 1000);
  return accepted([
    ev('OverrideRequested', { round, requested_by: o.requested_by, justification: o.justification, at }),
    ev('ApprovalRequested', {
      round, kind: 'override', groups: o.settings.groups, quorum: 1, deadline, escalate_to: [], level_timeout_sec: o.settings.timeout_sec,
      on_timeout: 'DENY', requested_by: o.requested_by, args_digest: state.args_digest, snapshot_hash: state.snapshot_hash ?? '', justification: o.justification,
    }),
  ]);
}

function reportOutcome(state: RunState, o: ReportOutcome['data'], now: Date): Decided {
  if (state.status !== 'final') return refused('the decision is not final yet');
  if (state.outcome) return refused('the outcome was already reported');
  if (o.reported_by !== state.requested_by) return refused('only the requesting agent reports the outcome');
  return accepted([
    ev('OutcomeReported', { status: o.status, output_digest: o.output_digest, reported_by: o.reported_by, at: now.toISOString() }),
    ...o.violations.map((v) => ev('OutputViolation', v)),
  ]);
}

function recordVerdicts(state: RunState, d: RecordVerdicts['data'], now: Date): Decided {
  if (state.status !== 'pending_approval' || state.evaluation?.judgment === undefined) return refused('the run is not waiting for a judgment');
  if (state.rounds.length > 0 || state.verdicts !== undefined) return refused('the judgment was already recorded');
  const e = state.evaluation;
  const next = afterVerdicts(e, d.verdicts);
  const requested = { requested_by: state.requested_by, args_digest: state.args_digest } as EventData<'DecisionRequested'>;
  const after = next.kind === 'final'
    ? ev('DecisionFinalized', { decision: next.decision, reason: next.reason, matched_rule: next.matched_rule, constraints: next.constraints, via: 'evaluator' })
    : ev('ApprovalRequested', firstRound(requested, e, now, next.approval));
  return accepted([ev('JudgmentEvaluated', d), after]);
}

function recordDeliveries(state: RunState, d: RecordDeliveries['data']): Decided {
  if (state.status === 'not_started') return refused('the run has not been recorded yet');
  if (!state.rounds.some((r) => r.round === d.round)) return refused(`round ${d.round} does not exist`);
  return accepted(d.deliveries.map((x) => x.error
    ? ev('NotificationFailed', { round: d.round, channel: x.channel, recipient: x.recipient, purpose: d.purpose, error: x.error })
    : ev('NotificationSent', { round: d.round, channel: x.channel, recipient: x.recipient, purpose: x.queued ? 'digest' : d.purpose })));
}

/**
 * Approve with edit (services/decisions/approval-edit.ts): whether this answer's edit, or its lack of one, may
 * join the round. An edit only approves, only in an approval round whose rule allows edits, only when its
 * evaluation against the run's snapshot is no looser than the run's; and every approval of a round approves the
 * same arguments (as asked, or the same edit), so a quorum is never made of approvals of different arguments.
 * The edited arguments' digest is checked against the arguments by the worker (activities/authorize.ts).
 */
export function checkApprovalEdit(view: RunView, round: Round, verdict: 'approve' | 'reject', edit: ApprovalEdit | undefined): string | null {
  const agreed = round.approvals[0];
  if (edit === undefined) {
    if (verdict === 'approve' && agreed?.edited_args_digest !== undefined) {
      return `round ${round.round} is being approved with the arguments ${agreed.approver_id} edited (${agreed.edited_args_digest}): approve those same arguments, or reject`;
    }
    return null;
  }
  if (verdict !== 'approve') return 'only an approval can change the arguments';
  if (round.kind !== 'approval' || !view.evaluation) return 'an override round decides whether to lift the DENY; it cannot change the arguments';
  if (!editsAllowed(view.evaluation)) return `rule ${view.matched_rule ?? '(none)'} does not allow approving changed arguments`;
  if (JSON.stringify(edit.args).length > MAX_EDITED_ARGS_CHARS) return `the edited arguments exceed ${MAX_EDITED_ARGS_CHARS} characters of JSON`;
  if (edit.args_digest === round.args_digest) return 'the edited arguments are the ones asked for: approve without an edit';
  if (edit.evaluation.snapshot_hash !== round.snapshot_hash) return 'the edited arguments were evaluated against another policy snapshot than the round is bound to';
  const looser = checkEditNoLooser(view.evaluation, edit.evaluation);
  if (!looser.ok) return looser.reason;
  if (agreed && agreed.edited_args_digest !== edit.args_digest) {
    return agreed.edited_args_digest === undefined
      ? `round ${round.round} already has approvals of the arguments as asked: approve those, or reject`
      : `round ${round.round} is being approved with other edited arguments (${agreed.edited_args_digest}): approve those same arguments, or reject`;
  }
  return null;
}

/** The final decision of a round approved with edited arguments: the edit's arguments, the constraints of both evaluations, tightest. */
function approvedWithEdit(e: Evaluation, edit: ApprovalEdit): RunEvent {
  const constraints = editedConstraints(e.constraints, edit.evaluation.constraints);
  const decision = Object.keys(constraints).length > 0 ? 'ALLOW_WITH_CONSTRAINTS' : 'ALLOW';
  return ev('DecisionFinalized', {
    decision, reason: `approved with edited arguments: ${e.reason}`, matched_rule: e.matched_rule, constraints, via: 'approval',
    edited_args: edit.args, edited_args_digest: edit.args_digest,
  });
}
