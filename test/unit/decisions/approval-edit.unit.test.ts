import { describe, expect, it } from 'vitest';
import type { DecisionRequest, Evaluation, MatchedRule } from '../../../schemas/decision.ts';
import type { ApprovalEdit, EventData } from '../../../schemas/events.ts';
import { checkEditNoLooser, editedConstraints, editedRequest, widerConstraint } from '../../../services/decisions/approval-edit.ts';
import { decide, runState, type AnswerRound, type RunCommand } from '../../../services/decisions/run-decider.ts';
import { foldRun, type RunEvent } from '../../../services/decisions/run-view.ts';
import { buildReceipt } from '../../../services/receipts/build-receipt.ts';
import { at, given, iso } from './given-when-then.ts';

// Approve with edit, given/when/then: given these events, when this answer, then these events or this refusal.

const H = (c: string) => `sha256:${c.repeat(64)}`;
const SNAP = H('a');
const ARGS = H('b');
const EDITED = H('e');
const OTHER_EDIT = H('f');

const big: MatchedRule = { policy_id: 'refunds', version: 1, rule: 'big', decision: 'REQUIRE_APPROVAL' };
const request: DecisionRequest = { agent: { id: 'pay-bot' }, action: { tool: 'payment_tool', operation: 'Refund', args: { order: 'A-1', amount: 650 } }, context: { amount: 650, environment: 'prod' }, policy_rules: [] };
const requested: EventData<'DecisionRequested'> = { decision_id: 'dec_1', tenant_id: 't1', request, request_digest: H('c'), args_digest: ARGS, idempotency_key: null, requested_by: 'prn_bot' };
const evaluation = (over: Partial<Evaluation> = {}): Evaluation => ({
  decision: 'REQUIRE_APPROVAL', reason: 'big refund', matched_rule: 'big', matched_rules: [big], constraints: { max_runtime_sec: 600 }, snapshot_hash: SNAP, facts: { counters: { k: 1 } }, now: iso(0),
  approval: { approvers: ['finance'], quorum: 1, timeout: '1h', timeout_sec: 3600, on_timeout: 'DENY' }, ...over,
});
const ev = <T extends RunEvent['type']>(type: T, data: EventData<T>) => ({ type, data }) as RunEvent;
const round = (over: Partial<EventData<'ApprovalRequested'>> = {}): EventData<'ApprovalRequested'> => ({
  round: 1, kind: 'approval', groups: ['finance'], quorum: 1, deadline: iso(3600), escalate_to: [], level_timeout_sec: 3600, on_timeout: 'DENY',
  requested_by: 'prn_bot', args_digest: ARGS, snapshot_hash: SNAP, ...over,
});
const started = (r: Partial<EventData<'ApprovalRequested'>> = {}, e: Partial<Evaluation> = {}) => [
  ev('DecisionRequested', requested), ev('PolicyEvaluated', { evaluation: evaluation(e), policies: [], default_decision: 'DENY' }), ev('ApprovalRequested', round(r)),
];
const edit = (over: Partial<ApprovalEdit> = {}, e: Partial<Evaluation> = {}): ApprovalEdit => ({ args: { order: 'A-1', amount: 600 }, args_digest: EDITED, evaluation: evaluation(e), ...over });
const answer = (over: Partial<AnswerRound['data']> = {}): RunCommand => ({
  type: 'AnswerRound',
  data: { round: 1, verdict: 'approve', approver_id: 'prn_ann', approver_roles: ['approver'], approver_groups: ['finance'], tenant_id: 't1', channel: 'api', args_digest: ARGS, snapshot_hash: SNAP, ...over },
});
const granted = (approver: string, e?: ApprovalEdit) => ev('ApprovalGranted', { round: 1, approver_id: approver, channel: 'api', at: iso(10), ...(e ? { edit: e } : {}) });


describe('approve with edit: the decider', () => {
  it('an edit evaluated by the same rule counts: the run is final with the edited arguments, constraints merged tightest', () => {
    const e = edit({}, { constraints: { max_runtime_sec: 300, denied_hosts: ['x'] } });
    given(started()).when(answer({ edit: e })).then([
      granted('prn_ann', e),
      ev('DecisionFinalized', {
        decision: 'ALLOW_WITH_CONSTRAINTS', reason: 'approved with edited arguments: big refund', matched_rule: 'big',
        constraints: { max_runtime_sec: 300, denied_hosts: ['x'] }, via: 'approval', edited_args: { order: 'A-1', amount: 600 }, edited_args_digest: EDITED,
      }),
    ]);
  });

  it('the final view and the receipt carry both digests', () => {
    const e = edit();
    const events = [...started(), granted('prn_ann', e)];
    const d = decide(runState(foldRun(events)), answer({ approver_id: 'prn_bob', edit: e }), at(10));
    expect(d.ok).toBe(false); // quorum 1: the round is closed already
    const closed = decide(runState(foldRun(started())), answer({ edit: e }), at(10));
    if (!closed.ok) throw new Error(closed.reason);
    const view = foldRun([...started(), ...closed.events]);
    expect(view?.edited_args).toEqual(e.args);
    expect(view?.edited_args_digest).toBe(EDITED);
    const stored = [...started(), ...closed.events].map((x, i) => ({ ...x, stream_id: 'run/dec_1', hash: H('0'), stream_version: i + 1, recorded_at: iso(20) }));
    const receipt = buildReceipt(stored)!;
    expect(receipt.action.args_digest).toBe(ARGS);
    expect(receipt.action.edited_args_digest).toBe(EDITED);
    expect(receipt.approvals[0]?.edited_args_digest).toBe(EDITED);
  });

  it('refused: edited arguments the policy denies (an approval never lifts a DENY)', () => {
    given(started()).when(answer({ edit: edit({}, { decision: 'DENY', matched_rule: 'huge', reason: 'too big', matched_rules: [{ ...big, rule: 'huge', decision: 'DENY' }] }) })).refused(/denied by rule huge.*never lifts a DENY/);
  });

  it('refused: edited arguments a rule would ALLOW are looser than the REQUIRE_APPROVAL asked', () => {
    for (const decision of ['ALLOW', 'ALLOW_WITH_CONSTRAINTS'] as const) {
      given(started()).when(answer({ edit: edit({}, { decision, matched_rule: 'small', matched_rules: [{ ...big, rule: 'small', decision }] }) })).refused(new RegExp(`would be ${decision} by rule small, looser than the REQUIRE_APPROVAL`));
    }
  });

  it('refused: edited arguments that need approval by a rule this round did not ask for', () => {
    const cfo: MatchedRule = { ...big, rule: 'cfo-refunds' };
    given(started()).when(answer({ edit: edit({}, { matched_rule: 'cfo-refunds', matched_rules: [big, cfo] }) })).refused(/approval by rule cfo-refunds .* did not ask for/);
  });

  it('refused: wider constraints (a max raised, a max dropped)', () => {
    given(started()).when(answer({ edit: edit({}, { constraints: { max_runtime_sec: 900 } }) })).refused(/wider constraints: max_runtime_sec 900 is above 600/);
    given(started()).when(answer({ edit: edit({}, { constraints: {} }) })).refused(/max_runtime_sec is dropped/);
  });

  it('refused: an evaluation with another snapshot, clock or facts than the run’s', () => {
    given(started()).when(answer({ edit: edit({}, { snapshot_hash: H('9') }) })).refused(/another policy snapshot/);
    given(started()).when(answer({ edit: edit({}, { now: iso(5) }) })).refused(/other facts or another clock/);
    given(started()).when(answer({ edit: edit({}, { facts: { counters: { k: 0 } } }) })).refused(/other facts or another clock/);
  });

  it('refused: an edit that rejects, in an override round, under a rule that forbids edits, or of the same arguments', () => {
    given(started()).when(answer({ verdict: 'reject', edit: edit() })).refused('only an approval can change the arguments');
    given(started({ kind: 'override', justification: 'j' })).when(answer({ edit: edit() })).refused(/override round/);
    given(started({}, { approval: { approvers: ['finance'], quorum: 1, timeout: '1h', timeout_sec: 3600, on_timeout: 'DENY', allow_edits: false } })).when(answer({ edit: edit() })).refused(/does not allow approving changed arguments/);
    given(started()).when(answer({ edit: edit({ args_digest: ARGS }) })).refused(/the ones asked for/);
  });

  it('refused: oversized edited arguments', () => {
    given(started()).when(answer({ edit: edit({ args: { blob: 'x'.repeat(70_000) } }) })).refused(/exceed 65536 characters/);
  });

  it('a quorum is made of approvals of the same arguments', () => {
    const e = edit();
    const q2 = started({ quorum: 2 });
    // After an edit: a plain approval, or another edit, is refused; the same edit counts and closes the round.
    given([...q2, granted('prn_ann', e)]).when(answer({ approver_id: 'prn_bob' })).refused(/approve those same arguments, or reject/);
    given([...q2, granted('prn_ann', e)]).when(answer({ approver_id: 'prn_bob', edit: edit({ args_digest: OTHER_EDIT, args: { amount: 1 } }) })).refused(/other edited arguments/);
    given([...q2, granted('prn_ann', e)]).when(answer({ approver_id: 'prn_bob', edit: e })).then([
      granted('prn_bob', e),
      ev('DecisionFinalized', { decision: 'ALLOW_WITH_CONSTRAINTS', reason: 'approved with edited arguments: big refund', matched_rule: 'big', constraints: { max_runtime_sec: 600 }, via: 'approval', edited_args: e.args, edited_args_digest: EDITED }),
    ]);
    // After a plain approval, an edit is refused; a rejection still counts.
    given([...q2, granted('prn_ann')]).when(answer({ approver_id: 'prn_bob', edit: e })).refused(/approvals of the arguments as asked/);
    given([...q2, granted('prn_ann', e)]).when(answer({ approver_id: 'prn_bob', verdict: 'reject' })).then([
      ev('ApprovalRejected', { round: 1, approver_id: 'prn_bob', channel: 'api', at: iso(10) }),
      ev('DecisionFinalized', { decision: 'DENY', reason: 'rejected by prn_bob', matched_rule: 'big', constraints: {}, via: 'rejection' }),
    ]);
  });

  it('a round that expires after a partial edit falls back without the edit', () => {
    const q2 = started({ quorum: 2, on_timeout: 'ALLOW' });
    const d = decide(runState(foldRun([...q2, granted('prn_ann', edit())])), { type: 'ReachDeadline', data: { round: 1 } }, at(3601));
    expect(d.ok && d.events.at(-1)).toEqual(ev('DecisionFinalized', { decision: 'ALLOW', reason: `no answer before ${iso(3600)}: fallback ALLOW`, matched_rule: 'big', constraints: { max_runtime_sec: 600 }, via: 'expiry' }));
  });
});

describe('approve with edit: no looser, precisely', () => {
  it('constraints: max no higher, allowed a subset, denied a superset, require kept; extra keys tighten', () => {
    const run = { max_runtime_sec: 600, allowed_paths: ['a', 'b'], denied_hosts: ['x'], require_ticket: true };
    expect(widerConstraint(run, { ...run, max_runtime_sec: 60, allowed_paths: ['a'], denied_hosts: ['x', 'y'], max_diff_lines: 5 })).toBeNull();
    expect(widerConstraint(run, { ...run, allowed_paths: ['a', 'c'] })).toMatch(/allowed_paths allows c/);
    expect(widerConstraint(run, { ...run, denied_hosts: [] })).toMatch(/denied_hosts no longer denies x/);
    expect(widerConstraint(run, { ...run, require_ticket: false })).toMatch(/require_ticket is no longer required/);
    expect(editedConstraints(run, { max_runtime_sec: 60, allowed_paths: ['b', 'c'] })).toEqual({ max_runtime_sec: 60, allowed_paths: ['b'], denied_hosts: ['x'], require_ticket: true });
  });

  it('the same rule, or the same rules plus stricter ones that add constraints, is no looser', () => {
    const tight: MatchedRule = { policy_id: 'refunds', version: 1, rule: 'prod-limit', decision: 'ALLOW_WITH_CONSTRAINTS' };
    expect(checkEditNoLooser(evaluation(), evaluation({ matched_rules: [big, tight], constraints: { max_runtime_sec: 60 } }))).toEqual({ ok: true });
    expect(checkEditNoLooser(evaluation(), evaluation({ matched_rules: [] }))).toEqual({ ok: true });
  });

  it('the edited request: args replaced, context fields that mirrored an argument follow it', () => {
    const r = editedRequest(request, { order: 'A-1', amount: 100 });
    expect(r.action.args).toEqual({ order: 'A-1', amount: 100 });
    expect(r.context).toEqual({ amount: 100, environment: 'prod' });
    // A context field with another value than the argument is the agent's own fact, not a mirror: kept.
    const own = editedRequest({ ...request, context: { amount: 9 } }, { amount: 100 });
    expect(own.context).toEqual({ amount: 9 });
    // An argument dropped by the edit takes its mirror with it.
    expect(editedRequest(request, { order: 'A-1' }).context).toEqual({ environment: 'prod' });
  });
});
