import type { Constraints, Decision, Evaluation, MatchedRule } from '../../schemas/decision.ts';
import type { EventData, EventType, RoundRequirement } from '../../schemas/events.ts';
import { delegationFor, type ActiveDelegation } from './delegation-rules.ts';
import { answerRequirements, closeRequirements, escalateRequirements, expireRequirements, openRequirements } from './approval-requirements.ts';

/**
 * The state of one decision run, folded from its events. The workflow, the receipt builder, the API's read
 * path and the auditor's replay all fold with this one `evolve`, so they cannot disagree about a run.
 * Pure and deterministic: safe in workflow code (no clock, no I/O, no node: imports).
 */
export type Answer = {
  approver_id: string;
  channel: EventData<'ApprovalGranted'>['channel'];
  comment?: string | undefined;
  at: string;
  /** Present only when the answer was given as a delegate, or in a round of requirements. */
  on_behalf_of?: string | undefined;
  requirements?: number[] | undefined;
  /** When this approval approved changed arguments: their digest. */
  edited_args_digest?: string | undefined;
};

/** One requirement of a round of requirements (approval-requirements.ts), as its events leave it. */
export type RequirementState = RoundRequirement & {
  /** The level it is at: a 0-based index into levels. */
  level: number;
  /** Approvers whose approvals count for it. */
  approvals: string[];
  /** waived: its last level ended unanswered and its fallback is ALLOW; expired: the same with DENY. */
  status: 'open' | 'approved' | 'waived' | 'expired';
};

export type Round = {
  round: number;
  kind: 'approval' | 'override';
  groups: string[];
  quorum: number;
  deadline: string;
  level: number;
  escalate_to: string[];
  level_timeout_sec: number;
  on_timeout: 'DENY' | 'ALLOW';
  requested_by: string;
  args_digest: string | null;
  snapshot_hash: string;
  justification?: string | undefined;
  /** The changed arguments the round's approvals approve, from its first approval that edited them. */
  edit?: EventData<'ApprovalGranted'>['edit'];
  approvals: Answer[];
  rejections: Answer[];
  status: 'open' | 'approved' | 'rejected' | 'expired';
  /** A round of requirements: each must be satisfied (absent in a round of one single-level approval). */
  requirements?: RequirementState[] | undefined;
  /**
   * A round of requirements: its levels in turn (the first, then one per escalation), with who was asked at each
   * (the recipients of its notices while it was at that level).
   */
  steps?: RoundStep[] | undefined;
  /** A round of requirements that expired: the fallback it expired to. */
  fallback?: 'DENY' | 'ALLOW' | undefined;
};

export type RoundStep = { level: number; groups: string[]; deadline: string; asked: string[] };

export type OverrideRecord = {
  round: number;
  requested_by: string;
  justification: string;
  requested_at: string;
  outcome: 'pending' | 'granted' | 'denied';
  decided_at?: string | undefined;
  reason?: string | undefined;
};

export type RunView = {
  decision_id: string;
  tenant_id: string;
  agent_id: string;
  requested_by: string;
  request_digest: string;
  args_digest: string | null;
  action: { tool: string; operation?: string | undefined; topic?: string | undefined; capability?: string | undefined };
  status: 'requested' | 'pending_approval' | 'final';
  decision: Decision | null;
  reason: string;
  matched_rule: string | null;
  matched_rules: MatchedRule[];
  constraints: Constraints;
  snapshot_hash: string | null;
  policies: Array<{ policy_id: string; version: number; hash: string; scope?: 'platform' }>;
  evaluation: Evaluation | null;
  /** The tenant's decision when no rule matches, as it stood when the run was evaluated. */
  default_decision: Decision;
  finalized_via: string | null;
  /** The arguments the approvers approved instead of the ones asked for, once the run is final with them. */
  edited_args: Record<string, unknown> | null;
  edited_args_digest: string | null;
  rounds: Round[];
  overrides: OverrideRecord[];
  notifications: number;
  outcome: { status: 'succeeded' | 'failed'; output_digest: string; reported_by: string; at: string; violations: Array<{ policy_id: string; rule: string; reason: string }> } | null;
  receipt: { digest: string; head_version: number; signature: { alg: 'Ed25519'; key_id: string; value: string } } | null;
  events: number;
  /** The tenant evaluator's verdicts on the request's judgment rules, when it was asked. */
  verdicts?: EventData<'JudgmentEvaluated'>['verdicts'];
  /** W3C trace id of the request that asked (absent when there was none). */
  trace_id?: string;
};

export type RunEvent = { [K in EventType]: { type: K; data: EventData<K> } }[EventType];

export function initialRunView(): RunView | null {
  return null;
}

const updateRound = (view: RunView, n: number, f: (r: Round) => Round): Round[] => view.rounds.map((r) => (r.round === n ? f(r) : r));

export function evolve(view: RunView | null, event: RunEvent): RunView | null {
  if (event.type === 'DecisionRequested') {
    const d = event.data;
    return {
      decision_id: d.decision_id,
      tenant_id: d.tenant_id,
      agent_id: d.request.agent.id,
      requested_by: d.requested_by,
      ...(d.trace ? { trace_id: d.trace.trace_id } : {}),
      request_digest: d.request_digest,
      args_digest: d.args_digest,
      action: { tool: d.request.action.tool, operation: d.request.action.operation, topic: d.request.action.topic, capability: d.request.action.capability },
      status: 'requested',
      decision: null,
      reason: '',
      matched_rule: null,
      matched_rules: [],
      constraints: {},
      snapshot_hash: null,
      policies: [],
      evaluation: null,
      default_decision: 'DENY',
      finalized_via: null,
      edited_args: null,
      edited_args_digest: null,
      rounds: [],
      overrides: [],
      notifications: 0,
      outcome: null,
      receipt: null,
      events: 1,
    };
  }
  if (!view) return view;
  const v: RunView = { ...view, events: view.events + 1 };
  switch (event.type) {
    case 'PolicyEvaluated': {
      const e = event.data.evaluation;
      return {
        ...v,
        status: e.decision === 'REQUIRE_APPROVAL' ? 'pending_approval' : v.status,
        decision: e.decision,
        reason: e.reason,
        matched_rule: e.matched_rule,
        matched_rules: e.matched_rules,
        constraints: e.constraints,
        snapshot_hash: e.snapshot_hash,
        policies: event.data.policies,
        evaluation: e,
        default_decision: event.data.default_decision ?? 'DENY',
      };
    }
    case 'JudgmentEvaluated':
      return { ...v, verdicts: event.data.verdicts };
    case 'DecisionFinalized': {
      const d = event.data;
      return {
        ...v, status: 'final', decision: d.decision, reason: d.reason, matched_rule: d.matched_rule, constraints: d.constraints, finalized_via: d.via,
        edited_args: d.edited_args ?? v.edited_args, edited_args_digest: d.edited_args_digest ?? v.edited_args_digest,
      };
    }
    case 'ApprovalRequested': {
      const d = event.data;
      const round: Round = {
        round: d.round, kind: d.kind, groups: d.groups, quorum: d.quorum, deadline: d.deadline, level: 0, escalate_to: d.escalate_to,
        level_timeout_sec: d.level_timeout_sec, on_timeout: d.on_timeout, requested_by: d.requested_by, args_digest: d.args_digest,
        snapshot_hash: d.snapshot_hash, justification: d.justification, approvals: [], rejections: [], status: 'open',
      };
      if (d.requirements) {
        round.requirements = openRequirements(d.requirements);
        round.steps = [{ level: 0, groups: d.groups, deadline: d.deadline, asked: [] }];
      }
      return { ...v, rounds: [...v.rounds, round] };
    }
    case 'ApprovalGranted': {
      const d = event.data;
      return {
        ...v,
        rounds: updateRound(v, d.round, (r) => {
          const approvals = [...r.approvals, { ...answerOf(d), ...(d.edit ? { edited_args_digest: d.edit.args_digest } : {}) }];
          const edit = d.edit && !r.edit ? { edit: d.edit } : {};
          if (r.requirements) return closeRequirements({ ...r, approvals, ...edit, requirements: answerRequirements(r.requirements, d.approver_id, d.requirements ?? []) });
          return { ...r, approvals, status: approvals.length >= r.quorum ? 'approved' : r.status, ...edit };
        }),
      };
    }
    case 'ApprovalRejected': {
      const d = event.data;
      return { ...v, rounds: updateRound(v, d.round, (r) => ({ ...r, rejections: [...r.rejections, answerOf(d)], status: 'rejected' })) };
    }
    case 'ApprovalEscalated': {
      const d = event.data;
      return {
        ...v,
        rounds: updateRound(v, d.round, (r) => {
          const moved = { ...r, level: d.level, groups: d.groups, deadline: d.deadline, ...(r.steps ? { steps: [...r.steps, { level: d.level, groups: d.groups, deadline: d.deadline, asked: [] }] } : {}) };
          return r.requirements && d.requirements ? closeRequirements({ ...moved, requirements: escalateRequirements(r.requirements, d.requirements) }) : moved;
        }),
      };
    }
    case 'ApprovalExpired': {
      const d = event.data;
      return {
        ...v,
        rounds: updateRound(v, d.round, (r) => (r.requirements && d.requirements
          ? closeRequirements({ ...r, requirements: expireRequirements(r.requirements, d.requirements) })
          : { ...r, status: 'expired' })),
      };
    }
    case 'NotificationSent':
      return { ...v, notifications: v.notifications + 1, rounds: askedIn(v, event.data) };
    case 'NotificationFailed':
      return { ...v, notifications: v.notifications + 1 };
    case 'OverrideRequested': {
      const d = event.data;
      return { ...v, overrides: [...v.overrides, { round: d.round, requested_by: d.requested_by, justification: d.justification, requested_at: d.at, outcome: 'pending' }] };
    }
    case 'OverrideGranted':
    case 'OverrideDenied': {
      const d = event.data;
      const outcome = event.type === 'OverrideGranted' ? 'granted' : 'denied';
      return { ...v, overrides: v.overrides.map((o) => (o.round === d.round ? { ...o, outcome, decided_at: d.at, reason: d.reason } : o)) };
    }
    case 'OutcomeReported': {
      const d = event.data;
      return { ...v, outcome: { status: d.status, output_digest: d.output_digest, reported_by: d.reported_by, at: d.at, violations: [] } };
    }
    case 'OutputViolation':
      return v.outcome ? { ...v, outcome: { ...v.outcome, violations: [...v.outcome.violations, event.data] } } : v;
    case 'ReceiptIssued':
      return { ...v, receipt: { digest: event.data.receipt_digest, head_version: event.data.head_version, signature: event.data.signature } };
    case 'PolicyActivated':
    case 'PolicyDrafted':
    case 'PolicyEdited':
    case 'PolicyValidated':
    case 'PolicyDeprecated':
    case 'PolicyRolledBack':
    case 'PolicyImported':
    case 'PolicyBound':
    case 'PolicyUnbound':
    case 'PolicyDeleted':
    case 'AgentManifestForced':
    case 'PolicyActivationRequested':
    case 'PolicyActivationApproved':
    case 'PolicyActivationRejected':
    case 'PolicyActivationExpired':
    case 'ToolCatalogRegistered':
    case 'ToolCatalogRemoved':
    case 'TenantCreated':
    case 'TenantChanged':
    case 'PrincipalCreated':
    case 'PrincipalChanged':
    case 'PlatformAdminRevoked':
    case 'ApiKeyCreated':
    case 'ApiKeyRevoked':
    case 'DelegationGranted':
    case 'DelegationRevoked':
    case 'EvaluatorChanged':
    case 'PlatformSettingsChanged':
      return view;
    default: {
      const never: never = event;
      return never;
    }
  }
}

/** A notice of a round of requirements adds its recipient to those asked at the level the round is at. */
function askedIn(v: RunView, d: EventData<'NotificationSent'>): Round[] {
  const r = v.rounds.find((x) => x.round === d.round);
  if (!r?.steps || !['request', 'escalation', 'digest'].includes(d.purpose)) return v.rounds;
  const last = r.steps[r.steps.length - 1]!;
  if (last.asked.includes(d.recipient)) return v.rounds;
  return updateRound(v, d.round, (x) => ({ ...x, steps: [...r.steps!.slice(0, -1), { ...last, asked: [...last.asked, d.recipient] }] }));
}

/** An answer as a round keeps it: the delegation and requirements only when the event has them. */
function answerOf(d: EventData<'ApprovalGranted'>): Answer {
  const a: Answer = { approver_id: d.approver_id, channel: d.channel, comment: d.comment, at: d.at };
  if (d.on_behalf_of !== undefined) a.on_behalf_of = d.on_behalf_of;
  if (d.requirements !== undefined) a.requirements = d.requirements;
  return a;
}

export function foldRun(events: Iterable<RunEvent>): RunView | null {
  let view = initialRunView();
  for (const e of events) view = evolve(view, e);
  return view;
}

export const openRound = (view: RunView | null): Round | undefined => view?.rounds.find((r) => r.status === 'open');

/** An approver's answer, as the API vouches for it (identity resolved from the approver's key). */
export type AnswerCommand = {
  round: number;
  verdict: 'approve' | 'reject';
  approver_id: string;
  approver_roles: string[];
  approver_groups: string[];
  tenant_id: string;
  args_digest: string | null;
  snapshot_hash: string;
  /** Delegations to the approver, as the database confirms them now (services/identity/delegations.ts). */
  delegations?: ActiveDelegation[] | undefined;
};

/**
 * Whether an answer may count (invariant 6): an authorised approver of this tenant and of a group of the
 * round, once, before the deadline, never the requester, and only for the exact arguments and snapshot the
 * round is bound to. Returns the precise reason when it may not.
 */
export function checkAnswer(view: RunView | null, a: AnswerCommand, now: Date): { ok: true; round: Round; delegation?: ActiveDelegation } | { ok: false; reason: string } {
  if (!view) return { ok: false, reason: 'the run has not been recorded yet' };
  if (a.tenant_id !== view.tenant_id) return { ok: false, reason: 'the approver belongs to another tenant' };
  const round = view.rounds.find((r) => r.round === a.round);
  if (!round) return { ok: false, reason: `round ${a.round} does not exist` };
  if (round.status !== 'open') return { ok: false, reason: `round ${a.round} is already ${round.status}` };
  if (now.getTime() > Date.parse(round.deadline)) return { ok: false, reason: `round ${a.round} closed at its deadline ${round.deadline}` };
  if (a.approver_id === round.requested_by || a.approver_id === view.requested_by) return { ok: false, reason: 'the requester cannot answer its own request' };
  if (!a.approver_roles.includes('approver')) return { ok: false, reason: 'the principal does not hold the approver role' };
  if (!a.approver_groups.some((g) => round.groups.includes(g))) return { ok: false, reason: `the approver is in none of the round's groups (${round.groups.join(', ')})` };
  if ([...round.approvals, ...round.rejections].some((x) => x.approver_id === a.approver_id || x.on_behalf_of === a.approver_id)) return { ok: false, reason: `the approver already answered round ${a.round}` };
  if (a.args_digest !== round.args_digest) return { ok: false, reason: 'the answer is for other arguments than the round is bound to' };
  if (a.snapshot_hash !== round.snapshot_hash) return { ok: false, reason: 'the answer is for another policy snapshot than the round is bound to' };
  const delegation = a.delegations?.length ? delegationFor(view, round, a, now) : undefined;
  return delegation ? { ok: true, round, delegation } : { ok: true, round };
}
