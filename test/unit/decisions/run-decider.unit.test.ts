import { describe, expect, it } from 'vitest';
import type { Evaluation } from '../../../schemas/decision.ts';
import type { EventData } from '../../../schemas/events.ts';
import { type AnswerRound, type RequestOverride, type RunCommand } from '../../../services/decisions/run-decider.ts';
import { checkAnswer, foldRun, type RunEvent } from '../../../services/decisions/run-view.ts';
import { at, given, iso, T0 } from './given-when-then.ts';

// Given these events, when this command (at this time), then these events or this refusal.

const H = (c: string) => `sha256:${c.repeat(64)}`;
const SNAP = H('a');
const ARGS = H('b');

const requested: EventData<'DecisionRequested'> = {
  decision_id: 'dec_1', tenant_id: 't1', request: { agent: { id: 'pay-bot' }, action: { tool: 'payment_tool', operation: 'Refund', args: { order: 'A-1' } }, context: {}, policy_rules: [] },
  request_digest: H('c'), args_digest: ARGS, idempotency_key: null, requested_by: 'prn_bot',
};
const evaluation = (over: Partial<Evaluation> = {}): Evaluation => ({
  decision: 'REQUIRE_APPROVAL', reason: 'big refund', matched_rule: 'big', matched_rules: [], constraints: {}, snapshot_hash: SNAP, facts: {}, now: iso(0), ...over,
});
const evaluated = (over: Partial<Evaluation> = {}): EventData<'PolicyEvaluated'> => ({ evaluation: evaluation(over), policies: [], default_decision: 'DENY' });
const ev = <T extends RunEvent['type']>(type: T, data: EventData<T>) => ({ type, data }) as RunEvent;

const approval = (over: Partial<NonNullable<Evaluation['approval']>> = {}): NonNullable<Evaluation['approval']> => ({
  approvers: ['finance'], quorum: 1, timeout: '1h', timeout_sec: 3600, on_timeout: 'DENY', ...over,
});
const round = (over: Partial<EventData<'ApprovalRequested'>> = {}): EventData<'ApprovalRequested'> => ({
  round: 1, kind: 'approval', groups: ['finance'], quorum: 1, deadline: iso(3600), escalate_to: [], level_timeout_sec: 3600, on_timeout: 'DENY',
  requested_by: 'prn_bot', args_digest: ARGS, snapshot_hash: SNAP, ...over,
});
const started = (r: Partial<EventData<'ApprovalRequested'>> = {}, e: Partial<Evaluation> = {}) => [ev('DecisionRequested', requested), ev('PolicyEvaluated', evaluated(e)), ev('ApprovalRequested', round(r))];
const denied = () => [ev('DecisionRequested', requested), ev('PolicyEvaluated', evaluated({ decision: 'DENY', reason: 'no' })), ev('DecisionFinalized', { decision: 'DENY', reason: 'no', matched_rule: 'big', constraints: {}, via: 'policy' })];
const allowed = () => [ev('DecisionRequested', requested), ev('PolicyEvaluated', evaluated({ decision: 'ALLOW', reason: 'ok' })), ev('DecisionFinalized', { decision: 'ALLOW', reason: 'ok', matched_rule: 'big', constraints: {}, via: 'policy' })];

const answer = (over: Partial<AnswerRound['data']> = {}): RunCommand => ({
  type: 'AnswerRound',
  data: { round: 1, verdict: 'approve', approver_id: 'prn_ann', approver_roles: ['approver'], approver_groups: ['finance'], tenant_id: 't1', channel: 'api', args_digest: ARGS, snapshot_hash: SNAP, ...over },
});
const override = (over: Partial<RequestOverride['data']> = {}): RunCommand => ({
  type: 'RequestOverride',
  data: { requested_by: 'prn_bot', requester_roles: ['agent'], justification: 'customer waiting', settings: { groups: ['admins'], timeout_sec: 600, window_sec: 300 }, final_at: iso(0), max_overrides: 3, ...over },
});
const outcome = (over: Partial<Extract<RunCommand, { type: 'ReportOutcome' }>['data']> = {}): RunCommand => ({
  type: 'ReportOutcome', data: { reported_by: 'prn_bot', status: 'succeeded', output_digest: H('d'), violations: [], ...over },
});


describe('decide: start', () => {
  it('ALLOW, DENY and constraints are final at the start', () => {
    for (const decision of ['ALLOW', 'DENY', 'ALLOW_WITH_CONSTRAINTS'] as const) {
      const constraints = decision === 'ALLOW_WITH_CONSTRAINTS' ? { max_runtime_sec: 60 } : {};
      given([]).when({ type: 'StartRun', data: { requested, evaluated: evaluated({ decision, reason: 'r', constraints }) } }).then([
        ev('DecisionRequested', requested), ev('PolicyEvaluated', evaluated({ decision, reason: 'r', constraints })),
        ev('DecisionFinalized', { decision, reason: 'r', matched_rule: 'big', constraints, via: 'policy' }),
      ]);
    }
  });

  it('REQUIRE_APPROVAL opens round 1 from the deciding rule’s approval settings', () => {
    const e = evaluated({ approval: approval({ approvers: ['sre'], quorum: 2, timeout_sec: 1800, escalate_to: ['leads'], escalate_after_sec: 600, on_timeout: 'ALLOW' }) });
    given([]).when({ type: 'StartRun', data: { requested, evaluated: e } }, at(0)).then([
      ev('DecisionRequested', requested), ev('PolicyEvaluated', e),
      ev('ApprovalRequested', round({ groups: ['sre'], quorum: 2, deadline: iso(600), escalate_to: ['leads'], level_timeout_sec: 1800, on_timeout: 'ALLOW' })),
    ]);
  });

  it('REQUIRE_APPROVAL without approval settings asks the approvers group, one answer, within an hour, DENY at the deadline', () => {
    const e = evaluated();
    given([]).when({ type: 'StartRun', data: { requested, evaluated: e } }, at(0)).then([
      ev('DecisionRequested', requested), ev('PolicyEvaluated', e), ev('ApprovalRequested', round({ groups: ['approvers'] })),
    ]);
  });

  it('an empty approvers list falls back to the approvers group', () => {
    const d = given([]).when({ type: 'StartRun', data: { requested, evaluated: evaluated({ approval: approval({ approvers: [] }) }) } }, at(0)).events();
    expect(d[2]).toMatchObject({ type: 'ApprovalRequested', data: { groups: ['approvers'] } });
  });

  it('a run starts once', () => {
    given(allowed()).when({ type: 'StartRun', data: { requested, evaluated: evaluated() } }).refused('already started');
  });
});

describe('decide: answers', () => {
  it('an approval that makes the quorum finalises ALLOW', () => {
    given(started()).when(answer({ comment: 'fine' })).then([
      ev('ApprovalGranted', { round: 1, approver_id: 'prn_ann', channel: 'api', at: iso(10), comment: 'fine' }),
      ev('DecisionFinalized', { decision: 'ALLOW', reason: 'approved: big refund', matched_rule: 'big', constraints: {}, via: 'approval' }),
    ]);
  });

  it('an approval of a run with constraints finalises ALLOW_WITH_CONSTRAINTS with them', () => {
    given(started({}, { constraints: { max_runtime_sec: 60 } })).when(answer()).then([
      ev('ApprovalGranted', { round: 1, approver_id: 'prn_ann', channel: 'api', at: iso(10) }),
      ev('DecisionFinalized', { decision: 'ALLOW_WITH_CONSTRAINTS', reason: 'approved: big refund', matched_rule: 'big', constraints: { max_runtime_sec: 60 }, via: 'approval' }),
    ]);
  });

  it('an approval short of the quorum is recorded and the round stays open', () => {
    given(started({ quorum: 2 })).when(answer({ channel: 'cli' })).then([ev('ApprovalGranted', { round: 1, approver_id: 'prn_ann', channel: 'cli', at: iso(10) })]);
  });

  it('the second approval of a quorum of two finalises', () => {
    const first = ev('ApprovalGranted', { round: 1, approver_id: 'prn_ann', channel: 'api', at: iso(5) });
    expect(given([...started({ quorum: 2 }), first]).when(answer({ approver_id: 'prn_bob' })).events().map((e) => e.type)).toEqual(['ApprovalGranted', 'DecisionFinalized']);
  });

  it('one rejection ends the round: DENY naming who rejected and why', () => {
    given(started({ quorum: 2 })).when(answer({ verdict: 'reject', comment: 'too much' })).then([
      ev('ApprovalRejected', { round: 1, approver_id: 'prn_ann', channel: 'api', at: iso(10), comment: 'too much' }),
      ev('DecisionFinalized', { decision: 'DENY', reason: 'rejected by prn_ann: too much', matched_rule: 'big', constraints: {}, via: 'rejection' }),
    ]);
  });

  it('refusals (invariant 6), each with its reason', () => {
    given([]).when(answer()).refused('not been recorded');
    given(started()).when(answer({ tenant_id: 't2' })).refused('another tenant');
    given(started()).when(answer({ round: 2 })).refused('round 2 does not exist');
    given(started()).when(answer(), at(3601)).refused('closed at its deadline');
    given(started()).when(answer({ approver_id: 'prn_bot' })).refused('requester cannot answer');
    given(started()).when(answer({ approver_roles: ['agent'] })).refused('approver role');
    given(started()).when(answer({ approver_groups: ['sre'] })).refused("none of the round's groups");
    given([...started({ quorum: 2 }), ev('ApprovalGranted', { round: 1, approver_id: 'prn_ann', channel: 'api', at: iso(5) })]).when(answer()).refused('already answered');
    given(started()).when(answer({ args_digest: H('e') })).refused('other arguments');
    given(started()).when(answer({ args_digest: null })).refused('other arguments');
    given(started()).when(answer({ snapshot_hash: H('e') })).refused('another policy snapshot');
    given([...started(), ev('ApprovalRejected', { round: 1, approver_id: 'prn_ann', channel: 'api', at: iso(5) })]).when(answer({ approver_id: 'prn_bob' })).refused('already rejected');
  });
});

describe('decide: deadlines', () => {
  it('before the deadline nothing happens', () => {
    given(started()).when({ type: 'ReachDeadline', data: { round: 1 } }, at(3599)).refused('open until');
  });

  it('a round with escalation groups escalates once: both groups, the level’s own timeout', () => {
    given(started({ deadline: iso(600), escalate_to: ['leads'], level_timeout_sec: 1800 })).when({ type: 'ReachDeadline', data: { round: 1 } }, at(600)).then([
      ev('ApprovalEscalated', { round: 1, level: 1, groups: ['finance', 'leads'], deadline: iso(2400) }),
    ]);
  });

  it('an escalated round expires at its next deadline to the fallback', () => {
    const escalated = ev('ApprovalEscalated', { round: 1, level: 1, groups: ['finance', 'leads'], deadline: iso(2400) });
    given([...started({ deadline: iso(600), escalate_to: ['leads'] }), escalated]).when({ type: 'ReachDeadline', data: { round: 1 } }, at(2400)).then([
      ev('ApprovalExpired', { round: 1, fallback: 'DENY', at: iso(2400) }),
      ev('DecisionFinalized', { decision: 'DENY', reason: `no answer before ${iso(2400)}: fallback DENY`, matched_rule: 'big', constraints: {}, via: 'expiry' }),
    ]);
  });

  it('a fallback of ALLOW keeps the constraints', () => {
    given(started({ on_timeout: 'ALLOW' }, { constraints: { max_runtime_sec: 5 } })).when({ type: 'ReachDeadline', data: { round: 1 } }, at(3600)).then([
      ev('ApprovalExpired', { round: 1, fallback: 'ALLOW', at: iso(3600) }),
      ev('DecisionFinalized', { decision: 'ALLOW', reason: `no answer before ${iso(3600)}: fallback ALLOW`, matched_rule: 'big', constraints: { max_runtime_sec: 5 }, via: 'expiry' }),
    ]);
  });

  it('a closed or unknown round has no deadline', () => {
    given(allowed()).when({ type: 'ReachDeadline', data: { round: 1 } }, at(9999)).refused('does not exist');
    given([...started(), ev('ApprovalRejected', { round: 1, approver_id: 'prn_ann', channel: 'api', at: iso(5) })]).when({ type: 'ReachDeadline', data: { round: 1 } }, at(9999)).refused('already rejected');
  });
});

describe('decide: overrides', () => {
  const overrideRound = round({ round: 1, kind: 'override', groups: ['admins'], deadline: iso(610), level_timeout_sec: 600, justification: 'customer waiting' });

  it('a final DENY opens an override round of the override groups', () => {
    given(denied()).when(override()).then([
      ev('OverrideRequested', { round: 1, requested_by: 'prn_bot', justification: 'customer waiting', at: iso(10) }),
      ev('ApprovalRequested', overrideRound),
    ]);
  });

  it('refusals: not a DENY, not final, one already open, too many, window closed, someone else', () => {
    given(allowed()).when(override()).refused('only a final DENY');
    given(started()).when(override()).refused('only a final DENY');
    given([]).when(override()).refused('only a final DENY');
    const open = [...denied(), ...given(denied()).when(override()).events()];
    given(open).when(override()).refused('already waiting');
    given(denied()).when(override({ max_overrides: 0 })).refused('at most 0');
    given(denied()).when(override(), at(301)).refused('window has closed');
    given(denied()).when(override({ requested_by: 'prn_eve' })).refused('only the requesting agent or an admin');
  });

  it('an admin may ask for someone else; a run final in this very task has no window yet', () => {
    expect(given(denied()).when(override({ requested_by: 'prn_adm', requester_roles: ['admin'] })).events()).toHaveLength(2);
    expect(given(denied()).when(override({ final_at: null }), at(100_000)).events()).toHaveLength(2);
  });

  it('an approved override grants and finalises ALLOW; a rejected or expired one is denied', () => {
    const open = [...denied(), ...given(denied()).when(override()).events()];
    given(open).when(answer({ approver_groups: ['admins'] }), at(20)).then([
      ev('ApprovalGranted', { round: 1, approver_id: 'prn_ann', channel: 'api', at: iso(20) }),
      ev('OverrideGranted', { round: 1, reason: 'approved by prn_ann', at: iso(20) }),
      ev('DecisionFinalized', { decision: 'ALLOW', reason: 'override granted: customer waiting', matched_rule: 'big', constraints: {}, via: 'override' }),
    ]);
    given(open).when(answer({ approver_groups: ['admins'], verdict: 'reject' }), at(20)).then([
      ev('ApprovalRejected', { round: 1, approver_id: 'prn_ann', channel: 'api', at: iso(20) }),
      ev('OverrideDenied', { round: 1, reason: 'rejected by prn_ann', at: iso(20) }),
    ]);
    given(open).when({ type: 'ReachDeadline', data: { round: 1 } }, at(610)).then([
      ev('ApprovalExpired', { round: 1, fallback: 'DENY', at: iso(610) }),
      ev('OverrideDenied', { round: 1, reason: `no answer before ${iso(610)}`, at: iso(610) }),
    ]);
  });

  it('a second override after a denied one takes the next round number', () => {
    const first = [...denied(), ...given(denied()).when(override()).events()];
    const closed = [...first, ...given(first).when(answer({ approver_groups: ['admins'], verdict: 'reject' }), at(20)).events()];
    expect(given(closed).when(override(), at(30)).events()[0]).toMatchObject({ type: 'OverrideRequested', data: { round: 2 } });
  });
});

describe('decide: outcomes and deliveries', () => {
  it('the requesting agent reports the outcome of a final decision once, with its violations', () => {
    const v = { policy_id: 'p', rule: 'r', reason: 'leaked' };
    given(allowed()).when(outcome({ violations: [v] })).then([
      ev('OutcomeReported', { status: 'succeeded', output_digest: H('d'), reported_by: 'prn_bot', at: iso(10) }),
      ev('OutputViolation', v),
    ]);
    given(started()).when(outcome()).refused('not final');
    given(allowed()).when(outcome({ reported_by: 'prn_eve' })).refused('only the requesting agent');
    given([...allowed(), ...given(allowed()).when(outcome()).events()]).when(outcome()).refused('already reported');
  });

  it('deliveries are recorded as sent, queued for a digest, or failed', () => {
    given(started()).when({ type: 'RecordDeliveries', data: { round: 1, purpose: 'reminder', deliveries: [
      { channel: 'slack', recipient: 'prn_ann' }, { channel: 'email', recipient: 'prn_bob', queued: true }, { channel: 'email', recipient: 'prn_cy', error: 'bounced' },
    ] } }).then([
      ev('NotificationSent', { round: 1, channel: 'slack', recipient: 'prn_ann', purpose: 'reminder' }),
      ev('NotificationSent', { round: 1, channel: 'email', recipient: 'prn_bob', purpose: 'digest' }),
      ev('NotificationFailed', { round: 1, channel: 'email', recipient: 'prn_cy', purpose: 'reminder', error: 'bounced' }),
    ]);
    given(started()).when({ type: 'RecordDeliveries', data: { round: 3, purpose: 'request', deliveries: [] } }).refused('round 3 does not exist');
  });
});

describe('evolve', () => {
  it('a run is nothing before DecisionRequested, and ignores events before it', () => {
    expect(foldRun([])).toBeNull();
    expect(foldRun([ev('PolicyEvaluated', evaluated())])).toBeNull();
  });

  it('requested, then pending approval, then final', () => {
    expect(foldRun([ev('DecisionRequested', requested)])).toMatchObject({ status: 'requested', decision: null, agent_id: 'pay-bot', requested_by: 'prn_bot', events: 1 });
    expect(foldRun(started())).toMatchObject({ status: 'pending_approval', decision: 'REQUIRE_APPROVAL', snapshot_hash: SNAP, rounds: [{ round: 1, status: 'open', level: 0 }] });
    expect(foldRun(allowed())).toMatchObject({ status: 'final', decision: 'ALLOW', finalized_via: 'policy', events: 3 });
  });

  it('answers fold into their round; the quorum approves it, one rejection rejects it', () => {
    const a1 = ev('ApprovalGranted', { round: 1, approver_id: 'prn_ann', channel: 'slack', at: iso(1) });
    expect(foldRun([...started({ quorum: 2 }), a1])!.rounds[0]).toMatchObject({ status: 'open', approvals: [{ approver_id: 'prn_ann', channel: 'slack' }] });
    const a2 = ev('ApprovalGranted', { round: 1, approver_id: 'prn_bob', channel: 'email', at: iso(2) });
    expect(foldRun([...started({ quorum: 2 }), a1, a2])!.rounds[0]!.status).toBe('approved');
    const r = ev('ApprovalRejected', { round: 1, approver_id: 'prn_bob', channel: 'email', at: iso(2) });
    expect(foldRun([...started({ quorum: 2 }), a1, r])!.rounds[0]).toMatchObject({ status: 'rejected', rejections: [{ approver_id: 'prn_bob' }] });
  });

  it('an escalation moves the round to its level, groups and deadline; an expiry closes it', () => {
    const esc = ev('ApprovalEscalated', { round: 1, level: 1, groups: ['finance', 'leads'], deadline: iso(99) });
    expect(foldRun([...started(), esc])!.rounds[0]).toMatchObject({ level: 1, groups: ['finance', 'leads'], deadline: iso(99), status: 'open' });
    expect(foldRun([...started(), esc, ev('ApprovalExpired', { round: 1, fallback: 'DENY', at: iso(99) })])!.rounds[0]!.status).toBe('expired');
  });

  it('overrides, notifications, outcomes, violations and the receipt', () => {
    const events = [
      ...denied(),
      ev('OverrideRequested', { round: 1, requested_by: 'prn_bot', justification: 'j', at: iso(1) }),
      ev('NotificationSent', { round: 1, channel: 'slack', recipient: 'prn_ann', purpose: 'request' }),
      ev('NotificationFailed', { round: 1, channel: 'email', recipient: 'prn_bob', purpose: 'request', error: 'x' }),
      ev('OverrideDenied', { round: 1, reason: 'no', at: iso(2) }),
      ev('OutcomeReported', { status: 'failed', output_digest: H('d'), reported_by: 'prn_bot', at: iso(3) }),
      ev('OutputViolation', { policy_id: 'p', rule: 'r', reason: 'x' }),
      ev('ReceiptIssued', { receipt_digest: H('f'), head_version: 9, signature: { alg: 'Ed25519', key_id: 'k1', value: 'v' } }),
    ];
    const v = foldRun(events)!;
    expect(v.overrides).toEqual([{ round: 1, requested_by: 'prn_bot', justification: 'j', requested_at: iso(1), outcome: 'denied', decided_at: iso(2), reason: 'no' }]);
    expect(v.notifications).toBe(2);
    expect(v.outcome).toMatchObject({ status: 'failed', violations: [{ policy_id: 'p', rule: 'r', reason: 'x' }] });
    expect(v.receipt).toMatchObject({ head_version: 9, digest: H('f') });
    expect(v.events).toBe(events.length);
  });
});

describe('checkAnswer', () => {
  const view = foldRun(started());
  const a = { round: 1, verdict: 'approve' as const, approver_id: 'prn_ann', approver_roles: ['approver'], approver_groups: ['finance'], tenant_id: 't1', args_digest: ARGS, snapshot_hash: SNAP };
  it('counts an authorised approver of the round’s group, once, before the deadline', () => {
    expect(checkAnswer(view, a, at(3600))).toMatchObject({ ok: true, round: { round: 1 } });
  });
  it('refuses at one millisecond past the deadline', () => {
    expect(checkAnswer(view, a, new Date(T0 + 3600_001))).toMatchObject({ ok: false });
  });
  it('refuses the agent as approver even in another round it did not request', () => {
    const withOverride = foldRun([...denied(), ev('OverrideRequested', { round: 1, requested_by: 'prn_adm', justification: 'j', at: iso(1) }), ev('ApprovalRequested', round({ kind: 'override', requested_by: 'prn_adm', groups: ['admins'] }))]);
    expect(checkAnswer(withOverride, { ...a, approver_id: 'prn_bot', approver_groups: ['admins'] }, at(5))).toMatchObject({ ok: false, reason: /requester/ });
    expect(checkAnswer(withOverride, { ...a, approver_id: 'prn_adm', approver_groups: ['admins'] }, at(5))).toMatchObject({ ok: false, reason: /requester/ });
  });
});
