import { describe, expect, it } from 'vitest';
import type { Evaluation, EvaluationApproval } from '../../../schemas/decision.ts';
import type { EventData } from '../../../schemas/events.ts';
import { decide, runState, type AnswerRound, type RunCommand } from '../../../services/decisions/run-decider.ts';
import { escalationGroups, ladderOf } from '../../../services/decisions/approval-requirements.ts';
import type { ActiveDelegation } from '../../../services/decisions/delegation-rules.ts';
import { foldRun, type RunEvent } from '../../../services/decisions/run-view.ts';
import { at, given, iso } from './given-when-then.ts';

// Rounds of requirements (several rules require approval, or a ladder), delegation: given these events, when this
// command (at this time), then these events or this refusal.

const H = (c: string) => `sha256:${c.repeat(64)}`;
const SNAP = H('a');
const ARGS = H('b');

const requested: EventData<'DecisionRequested'> = {
  decision_id: 'dec_1', tenant_id: 't1', request: { agent: { id: 'pay-bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: {}, policy_rules: [] },
  request_digest: H('c'), args_digest: ARGS, idempotency_key: null, requested_by: 'prn_bot',
};
const block = (over: Partial<EvaluationApproval> = {}): EvaluationApproval => ({ approvers: ['finance'], quorum: 1, timeout: '1h', timeout_sec: 3600, on_timeout: 'DENY', ...over });
const ladder = (levels: Array<[string[], number, number]>, on_timeout: 'DENY' | 'ALLOW' = 'DENY'): EvaluationApproval => ({
  ...block({ approvers: levels[0]![0], quorum: levels[0]![1], timeout_sec: levels[0]![2], on_timeout }),
  levels: levels.map(([approvers, quorum, timeout_sec]) => ({ approvers, quorum, timeout: `${timeout_sec}s`, timeout_sec })),
});
const evaluation = (over: Partial<Evaluation> = {}): Evaluation => ({
  decision: 'REQUIRE_APPROVAL', reason: 'big refund', matched_rule: 'security-review',
  matched_rules: [
    { policy_id: 'platform', version: 1, rule: 'security-review', decision: 'REQUIRE_APPROVAL' },
    { policy_id: 'refunds', version: 2, rule: 'finance-review', decision: 'REQUIRE_APPROVAL' },
  ],
  constraints: {}, snapshot_hash: SNAP, facts: {}, now: iso(0), ...over,
});
/** A platform rule asking security and a tenant rule asking finance. */
const twoRules = (sec: Partial<EvaluationApproval> = {}, fin: Partial<EvaluationApproval> = {}) => evaluation({
  approval: block({ approvers: ['security'], ...sec }),
  requirements: [
    { policy_id: 'platform', version: 1, rule: 'security-review', approval: block({ approvers: ['security'], ...sec }) },
    { policy_id: 'refunds', version: 2, rule: 'finance-review', approval: block({ approvers: ['finance'], ...fin }) },
  ],
});
const ev = <T extends RunEvent['type']>(type: T, data: EventData<T>) => ({ type, data }) as RunEvent;
const start = (e: Evaluation, now = at(0)) => {
  const d = decide(runState(null), { type: 'StartRun', data: { requested, evaluated: { evaluation: e, policies: [], default_decision: 'DENY' } } }, now);
  if (!d.ok) throw new Error(d.reason);
  return d.events;
};
const answer = (over: Partial<AnswerRound['data']> = {}): RunCommand => ({
  type: 'AnswerRound',
  data: { round: 1, verdict: 'approve', approver_id: 'prn_ann', approver_roles: ['approver'], approver_groups: ['finance'], tenant_id: 't1', channel: 'api', args_digest: ARGS, snapshot_hash: SNAP, ...over },
});
const deadline: RunCommand = { type: 'ReachDeadline', data: { round: 1 } };

/** Applies commands in turn: the events so far, for the next given. */
function after(events: RunEvent[], ...steps: Array<[RunCommand, Date]>): RunEvent[] {
  let all = events;
  for (const [c, now] of steps) all = [...all, ...given(all).when(c, now).events()];
  return all;
}
const finalised = (events: RunEvent[]) => events.filter((e) => e.type === 'DecisionFinalized').map((e) => e.data);

describe('decide: every matched requirement is asked (start)', () => {
  it('two rules that require approval open one round with a requirement each: the union of groups, the sum of quorums, the earliest deadline', () => {
    const e = twoRules({ timeout_sec: 1800 }, { quorum: 2 });
    expect(start(e)[2]).toEqual(ev('ApprovalRequested', {
      round: 1, kind: 'approval', groups: ['security', 'finance'], quorum: 3, deadline: iso(1800), escalate_to: [], level_timeout_sec: 1800, on_timeout: 'DENY',
      requested_by: 'prn_bot', args_digest: ARGS, snapshot_hash: SNAP,
      requirements: [
        { id: 1, policy_id: 'platform', version: 1, rule: 'security-review', levels: [{ groups: ['security'], quorum: 1, timeout_sec: 1800 }], on_timeout: 'DENY', deadline: iso(1800) },
        { id: 2, policy_id: 'refunds', version: 2, rule: 'finance-review', levels: [{ groups: ['finance'], quorum: 2, timeout_sec: 3600 }], on_timeout: 'DENY', deadline: iso(3600) },
      ],
    }));
  });

  it('a ladder opens a round of one requirement with every level', () => {
    const e = evaluation({ matched_rules: [evaluation().matched_rules[0]!], approval: ladder([[['sre'], 1, 30], [['sre-leads'], 1, 60], [['cto'], 1, 120]]) });
    const r = start(e)[2]!.data as EventData<'ApprovalRequested'>;
    expect(r.requirements).toEqual([{ id: 1, policy_id: 'platform', version: 1, rule: 'security-review', on_timeout: 'DENY', deadline: iso(30),
      levels: [{ groups: ['sre'], quorum: 1, timeout_sec: 30 }, { groups: ['sre-leads'], quorum: 1, timeout_sec: 60 }, { groups: ['cto'], quorum: 1, timeout_sec: 120 }] }]);
    expect([r.groups, r.deadline, r.quorum]).toEqual([['sre'], iso(30), 1]);
  });

  it('a single-level block, with or without escalate_to, keeps the round it always had (no requirements)', () => {
    const r = start(evaluation({ approval: block({ escalate_to: ['leads'], escalate_after_sec: 600 }) }))[2]!.data as EventData<'ApprovalRequested'>;
    expect(r.requirements).toBeUndefined();
    expect([r.groups, r.escalate_to, r.deadline]).toEqual([['finance'], ['leads'], iso(600)]);
  });

  it('the single-level form as a ladder: approvers until escalate_after, then escalate_to for another timeout', () => {
    expect(ladderOf(block({ escalate_to: ['leads'], escalate_after_sec: 600 }))).toEqual({ on_timeout: 'DENY', levels: [{ groups: ['finance'], quorum: 1, timeout_sec: 600 }, { groups: ['leads'], quorum: 1, timeout_sec: 3600 }] });
    expect(ladderOf(undefined)).toEqual({ on_timeout: 'DENY', levels: [{ groups: ['approvers'], quorum: 1, timeout_sec: 3600 }] });
  });
});

describe('decide: every matched requirement is given (answers)', () => {
  const opened = () => start(twoRules());

  it('an approval counts for the requirements of the approver’s groups; the round waits for the others', () => {
    given(opened()).when(answer()).then([ev('ApprovalGranted', { round: 1, approver_id: 'prn_ann', channel: 'api', at: iso(10), requirements: [2] })]);
  });

  it('the last requirement satisfied finalises ALLOW', () => {
    const events = after(opened(), [answer(), at(10)]);
    given(events).when(answer({ approver_id: 'prn_sam', approver_groups: ['security'] }), at(20)).then([
      ev('ApprovalGranted', { round: 1, approver_id: 'prn_sam', channel: 'api', at: iso(20), requirements: [1] }),
      ev('DecisionFinalized', { decision: 'ALLOW', reason: 'approved: big refund', matched_rule: 'security-review', constraints: {}, via: 'approval' }),
    ]);
  });

  it('two approvals of one group never satisfy the other group’s requirement', () => {
    const events = after(opened(), [answer(), at(10)], [answer({ approver_id: 'prn_fred' }), at(11)]);
    expect(finalised(events)).toEqual([]);
    expect(foldRun(events)!.rounds[0]!.requirements!.map((r) => r.status)).toEqual(['open', 'approved']);
  });

  it('a member of both groups answers once, for both', () => {
    given(opened()).when(answer({ approver_groups: ['finance', 'security'] })).events();
    const events = after(opened(), [answer({ approver_groups: ['finance', 'security'] }), at(10)]);
    expect((events[3]!.data as EventData<'ApprovalGranted'>).requirements).toEqual([1, 2]);
    expect(finalised(events)[0]?.via).toBe('approval');
  });

  it('a rejection from any requirement’s group ends the round: DENY', () => {
    const events = after(opened(), [answer(), at(10)]);
    given(events).when(answer({ approver_id: 'prn_sam', approver_groups: ['security'], verdict: 'reject', comment: 'no' }), at(20)).then([
      ev('ApprovalRejected', { round: 1, approver_id: 'prn_sam', channel: 'api', at: iso(20), comment: 'no', requirements: [1] }),
      ev('DecisionFinalized', { decision: 'DENY', reason: 'rejected by prn_sam: no', matched_rule: 'security-review', constraints: {}, via: 'rejection' }),
    ]);
  });

  it('refuses someone in neither group, the requester, a second answer', () => {
    given(opened()).when(answer({ approver_groups: ['sre'] })).refused("none of the round's groups (security, finance)");
    given(opened()).when(answer({ approver_id: 'prn_bot', approver_groups: ['security'] })).refused('requester cannot answer');
    given(after(opened(), [answer(), at(10)])).when(answer(), at(11)).refused('already answered');
  });
});

describe('decide: deadlines of requirements', () => {
  it('each requirement keeps its own deadline; a DENY fallback that runs out expires the round to DENY', () => {
    const events = after(start(twoRules({ timeout_sec: 1800 })), [answer(), at(10)]);
    given(events).when(deadline, at(1800)).then([
      ev('ApprovalExpired', { round: 1, fallback: 'DENY', at: iso(1800), requirements: [1] }),
      ev('DecisionFinalized', { decision: 'DENY', reason: `no answer before ${iso(1800)}: fallback DENY`, matched_rule: 'security-review', constraints: {}, via: 'expiry' }),
    ]);
  });

  it('an ALLOW fallback waives its requirement only: the round waits for the others, then expires to ALLOW', () => {
    const events = after(start(twoRules({ timeout_sec: 1800, on_timeout: 'ALLOW' })), [deadline, at(1800)]);
    expect(events.slice(3)).toEqual([ev('ApprovalExpired', { round: 1, fallback: 'ALLOW', at: iso(1800), requirements: [1] })]);
    const round = foldRun(events)!.rounds[0]!;
    expect([round.status, round.deadline]).toEqual(['open', iso(3600)]);
    given(events).when(answer(), at(2000)).then([
      ev('ApprovalGranted', { round: 1, approver_id: 'prn_ann', channel: 'api', at: iso(2000), requirements: [2] }),
      ev('DecisionFinalized', { decision: 'ALLOW', reason: `no answer before ${iso(3600)}: fallback ALLOW`, matched_rule: 'security-review', constraints: {}, via: 'expiry' }),
    ]);
  });
});

describe('decide: escalation ladders', () => {
  const three = () => start(evaluation({ approval: ladder([[['sre'], 1, 30], [['sre-leads'], 1, 60], [['cto'], 1, 120]]) }));

  it('each deadline moves the requirement to its next level: its groups are added, its timeout starts', () => {
    given(three()).when(deadline, at(30)).then([
      ev('ApprovalEscalated', { round: 1, level: 1, groups: ['sre', 'sre-leads'], deadline: iso(90), requirements: [{ id: 1, level: 1, deadline: iso(90) }] }),
    ]);
    given(after(three(), [deadline, at(30)])).when(deadline, at(90)).then([
      ev('ApprovalEscalated', { round: 1, level: 2, groups: ['sre', 'sre-leads', 'cto'], deadline: iso(210), requirements: [{ id: 1, level: 2, deadline: iso(210) }] }),
    ]);
  });

  it('after the last level, the fallback', () => {
    given(after(three(), [deadline, at(30)], [deadline, at(90)])).when(deadline, at(210)).then([
      ev('ApprovalExpired', { round: 1, fallback: 'DENY', at: iso(210), requirements: [1] }),
      ev('DecisionFinalized', { decision: 'DENY', reason: `no answer before ${iso(210)}: fallback DENY`, matched_rule: 'security-review', constraints: {}, via: 'expiry' }),
    ]);
  });

  it('a later level’s group may answer only once the ladder reaches it; earlier groups still may', () => {
    given(three()).when(answer({ approver_groups: ['cto'] })).refused("none of the round's groups (sre)");
    const level2 = after(three(), [deadline, at(30)], [deadline, at(90)]);
    expect(finalised(after(level2, [answer({ approver_groups: ['cto'] }), at(100)]))[0]?.via).toBe('approval');
    expect(finalised(after(level2, [answer({ approver_groups: ['sre'] }), at(100)]))[0]?.via).toBe('approval');
  });

  it('approvals given at earlier levels count toward a later level’s quorum', () => {
    const e = evaluation({ approval: ladder([[['sre'], 3, 30], [['sre-leads'], 2, 60]]) });
    const one = after(start(e), [answer({ approver_groups: ['sre'] }), at(10)]);
    expect(finalised(after(one, [deadline, at(30)], [answer({ approver_id: 'prn_lee', approver_groups: ['sre-leads'] }), at(40)]))[0]?.via).toBe('approval');
  });

  it('the groups to notify at an escalation are the new level’s; none after an expiry', () => {
    const before = foldRun(three())!.rounds[0]!;
    const escalated = foldRun(after(three(), [deadline, at(30)]))!.rounds[0]!;
    expect(escalationGroups(before, escalated)).toEqual(['sre-leads']);
    const ended = foldRun(after(three(), [deadline, at(30)], [deadline, at(90)], [deadline, at(210)]))!.rounds[0]!;
    expect(escalationGroups(escalated, ended)).toBeNull();
  });
});

describe('decide: delegation', () => {
  const opened = () => start(evaluation({ approval: block({ quorum: 2 }) }));
  const del = (over: Partial<ActiveDelegation> = {}): ActiveDelegation => ({ id: 'dlg_1', from: 'prn_ann', to: 'prn_dee', group: 'finance', starts_at: iso(0), ends_at: iso(100), ...over });
  const asDelegate = (over: Partial<AnswerRound['data']> = {}) => answer({ approver_id: 'prn_dee', delegations: [del()], ...over });

  it('a delegate in force answers on behalf of the delegator', () => {
    given(opened()).when(asDelegate()).then([ev('ApprovalGranted', { round: 1, approver_id: 'prn_dee', channel: 'api', at: iso(10), on_behalf_of: 'prn_ann', delegation_id: 'dlg_1' })]);
  });

  it('the delegator’s own answer is then not taken, nor a second one of the delegate', () => {
    const events = after(opened(), [asDelegate(), at(10)]);
    given(events).when(answer(), at(11)).refused('already answered');
    given(events).when(asDelegate(), at(11)).refused('already answered');
  });

  it('a delegation that is not in force, from the requester, for another group, or to someone who left the group is not applied', () => {
    for (const d of [del({ ends_at: iso(10) }), del({ starts_at: iso(11) }), del({ from: 'prn_bot' }), del({ group: 'sre' }), del({ to: 'prn_eve' })]) {
      const granted = given(opened()).when(answer({ approver_id: 'prn_dee', delegations: [d] })).events()[0]!.data as EventData<'ApprovalGranted'>;
      expect(granted.on_behalf_of).toBeUndefined();
    }
    given(opened()).when(asDelegate({ approver_groups: ['sre'] })).refused("none of the round's groups");
  });

  it('a delegate never answers as the requester, and a delegation never lets one person count twice', () => {
    given(opened()).when(answer({ approver_id: 'prn_bot', delegations: [del({ to: 'prn_bot' })] })).refused('requester cannot answer');
    const events = after(opened(), [asDelegate(), at(10)]);
    expect(finalised(events)).toEqual([]);
  });
});
