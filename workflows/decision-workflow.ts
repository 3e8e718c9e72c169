import { allHandlersFinished, ApplicationFailure, condition, defineQuery, defineUpdate, log, patched, proxyActivities, proxyLocalActivities, setHandler, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import type { Decision, DecisionRequest, DecisionResult, Evaluation } from '../schemas/decision.ts';
import type { EventData, NewEvent } from '../schemas/events.ts';
import type { Activities } from '../activities/types.ts';
import { checkEnvelope, messageSchemas, parseMessage, type AnswerInput, type OutcomeInput, type OverrideInput } from './decision-messages.ts';

export type { AnswerInput, OutcomeInput, OverrideInput };
import { runEventId } from '../services/decisions/ids.ts';
import { checkAnswer, evolve, openRound, type RunEvent, type RunView } from '../services/decisions/run-view.ts';
import { reasonFields } from '../services/decisions/reason-code.ts';
import { reminderAt, type RemindBefore } from './decision-reminders.ts';
import type { StartAttestation } from '../services/decisions/start-attestation.ts';

/** How long a run stays open after it is final, and who may lift a DENY. Set per tenant by the API. */
export type RunWindows = {
  override_sec: number;
  outcome_sec: number;
  override_groups: string[];
  override_timeout_sec: number;
  /** When to remind approvers before a deadline (issue 8); absent in runs started before reminders. */
  remind_before?: RemindBefore | null | undefined;
};

export type DecisionWorkflowInput = {
  decisionId: string;
  tenantId: string;
  requestedBy: string;
  request: DecisionRequest;
  requestDigest: string;
  argsDigest: string | null;
  idempotencyKey: string | null;
  evaluation: Evaluation;
  policies: Array<{ policy_id: string; version: number; hash: string }>;
  defaultDecision: Decision;
  windows: RunWindows;
  callbackUrl?: string | undefined;
  /** Counter amounts to record when the action goes ahead (rate and cost limits). */
  counterIncrements?: Array<{ key: string; amount: number }>;
  /** The principal that asked for another agent under its acts_for permission (recorded in DecisionRequested). */
  actingPrincipal?: string;
  /**
   * The API's signature over all of the above (services/decisions/start-attestation.ts), recorded in
   * DecisionRequested; the run's first append is refused without a valid one, so nothing is written.
   */
  attestation?: StartAttestation;
};

export type DecisionStatus = { result: DecisionResult; requestDigest: string; requestedBy?: string };

export type AnswerResult = { counted: true; round: number; round_status: string; decision_status: 'final' | 'pending_approval' };

export type OverrideResult = { round: number; groups: string[]; deadline: string };

export type OutcomeResult = { violations: number };

/** Defined once; the API and tests import these same objects (style item 2). */
export const statusQuery = defineQuery<DecisionStatus | null>('status');
export const answerUpdate = defineUpdate<AnswerResult, [AnswerInput]>('answer');
export const overrideUpdate = defineUpdate<OverrideResult, [OverrideInput]>('override');
export const outcomeUpdate = defineUpdate<OutcomeResult, [OutcomeInput]>('outcome');

export const MAX_OVERRIDES_PER_RUN = 3;
/**
 * Messages a validator accepted and the handler then refused (a bad attestation, a principal outside the
 * round's groups, one disabled meanwhile) still cost history events. The API refuses those before sending, so
 * only messages sent straight to Temporal, or a rare race, get here: past these counts the validator refuses
 * them (no history), which keeps a run's history bounded however many are sent.
 */
export const MAX_REFUSED_PER_PRINCIPAL = 3;
export const MAX_REFUSED_PER_RUN = 50;

// Short start-to-close: an append takes milliseconds, and a worker that died mid-activity is only noticed
// when this runs out, so it bounds how long a crash delays a run.
const storeOptions: ActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '10 seconds', nonRetryableErrorTypes: ['CountersignError'] },
};
const remote = proxyActivities<Activities>(storeOptions);
const { notifyApprovers, issueReceipt } = remote;
// Appends and the approver check are short Postgres calls: as local activities they run inside the workflow
// task instead of costing a server round trip each (an approve is counted and recorded in one task, not
// three). They stay idempotent (derived event ids), so a local retry after a crash writes nothing new.
// Receipts stay regular activities: a pending local activity holds the task, and with it the approver's answer.
const local = proxyLocalActivities<Activities>(storeOptions);
/** Runs started before local activities keep scheduling regular ones, so their histories still replay. */
export const LOCAL_STORE_PATCH = 'local-store-activities';
/** Receipts appended in turn with the run's other appends (a receipt and an outcome once raced for a version). */
export const SERIAL_RECEIPTS_PATCH = 'serial-receipts';
// Issue 8, approval channels: closing notices on Slack are bounded (the activity never throws) and never
// hold a run. Both changes to the commands a run issues are behind patches, so recorded histories replay.
const { announceRoundClosed } = proxyActivities<Activities>({ startToCloseTimeout: '30 seconds', retry: { maximumAttempts: 3 } });
export const REMINDERS_PATCH = 'reminders';
export const ROUND_CLOSED_NOTICE_PATCH = 'round-closed-notices';
export const FLUSH_BEFORE_NOTIFY_PATCH = 'flush-before-notify';
/** A run final at its start appends its events and receipt in one local activity (one workflow task). */
export const FINAL_IN_ONE_TASK_PATCH = 'final-in-one-task';
/** No approval request is sent for a first round an answer closed before the request went out. */
export const NO_REQUEST_FOR_CLOSED_ROUND_PATCH = 'no-request-for-closed-round';
const { deliverCallback } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 12 },
});

export function toResult(view: RunView): DecisionResult {
  return {
    decision_id: view.decision_id,
    decision: view.decision!,
    status: view.status === 'final' ? 'final' : 'pending_approval',
    reason: view.reason,
    matched_rule: view.matched_rule,
    matched_rules: view.matched_rules,
    constraints: view.constraints,
    snapshot_hash: view.snapshot_hash ?? '',
    ...reasonFields(view),
  };
}

const refuse = (reason: string) => ApplicationFailure.create({ type: 'AnswerRefused', message: reason, nonRetryable: true });
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * One decision, durably. Deterministic code only: the decision was evaluated (purely) by the API before the
 * start and arrives as input with its snapshot hash (a run keeps the snapshot it started with). I/O happens
 * in activities; the clock is Temporal's. Every step is an event, folded with the shared `evolve`.
 */
export async function decisionWorkflow(input: DecisionWorkflowInput): Promise<DecisionResult> {
  const wfId = workflowInfo().workflowId;
  const { appendRunEvents, authorize } = patched(LOCAL_STORE_PATCH) ? local : remote;
  let view: RunView | null = null;
  let recorded = 0; // versions assigned so far (committed or queued)
  let committed = 0; // versions known to be in the log
  let pending: NewEvent[] = [];
  let countersCounted = false;
  let countersDue: { at: string; entries: Array<{ key: string; amount: number }> } | null = null;
  let chain: Promise<void> = Promise.resolve();
  let receiptAt = 0; // the version the last receipt covers
  const finalizedRounds = new Set<number>();
  let oneTask = false;
  let finalAt = 0; // when the run became final (0 while its first task is under way)

  const record = <T extends RunEvent['type']>(type: T, data: EventData<T>) => {
    recorded += 1;
    const event = { type, data, eventId: runEventId(input.decisionId, recorded) } as NewEvent;
    pending.push(event);
    view = evolve(view, event);
    // The action goes ahead: its counters are written in the same transaction as this event.
    if (type === 'DecisionFinalized' && (data as EventData<'DecisionFinalized'>).decision !== 'DENY' && input.counterIncrements?.length && !countersCounted) {
      countersCounted = true;
      countersDue = { at: input.evaluation.now, entries: input.counterIncrements };
    }
  };
  // Appends are serialised: each batch expects the version the previous one left, so concurrent handlers
  // cannot interleave, and a retried activity finds its events by their derived ids.
  const flush = (first = false, withReceipt = false): Promise<void> => {
    if (withReceipt) {
      // The receipt takes the version after the batch (as in issueInTurn), appended by the same activity.
      recorded += 1;
      receiptAt = recorded;
    }
    chain = chain.then(async () => {
      if (pending.length === 0) return;
      const events = pending;
      pending = [];
      const counters = countersDue;
      countersDue = null;
      const res = await appendRunEvents({
        decisionId: input.decisionId,
        tenantId: input.tenantId,
        expectedVersion: committed,
        events,
        workflowId: wfId,
        ...(counters ? { counters } : {}),
        ...(first && input.idempotencyKey ? { idempotency: { key: input.idempotencyKey, requestDigest: input.requestDigest } } : {}),
        ...(withReceipt ? { withReceipt: true } : {}),
      });
      committed = res.streamVersion;
    });
    return chain;
  };
  const issue = async () => {
    if (patched(SERIAL_RECEIPTS_PATCH)) return issueInTurn();
    await flush();
    if (committed === receiptAt) return;
    const res = await issueReceipt({ decisionId: input.decisionId, tenantId: input.tenantId, headVersion: committed, workflowId: wfId });
    // The receipt event goes through the same version counter as every other event.
    recorded = Math.max(recorded, res.streamVersion);
    committed = res.streamVersion;
    receiptAt = committed;
  };
  // The receipt takes its version when it is asked for, and is appended in the same serial chain as every
  // batch: an outcome or override handled while it is being signed gets the next version, never the same one.
  const issueInTurn = async () => {
    if (recorded === receiptAt) return flush();
    const head = recorded;
    recorded += 1;
    receiptAt = recorded;
    await flush();
    chain = chain.then(async () => {
      const res = await issueReceipt({ decisionId: input.decisionId, tenantId: input.tenantId, headVersion: head, workflowId: wfId });
      committed = res.streamVersion;
    });
    await chain;
  };

  const notify = async (round: number, purpose: 'request' | 'escalation' | 'reminder', groups: string[]) => {
    await flushBeforeNotify();
    try {
      const deliveries = await notifyApprovers({ decisionId: input.decisionId, tenantId: input.tenantId, round, purpose, groups, requestedBy: input.requestedBy });
      for (const d of deliveries) {
        if (d.error) record('NotificationFailed', { round, channel: d.channel, recipient: d.recipient, purpose, error: d.error });
        else record('NotificationSent', { round, channel: d.channel, recipient: d.recipient, purpose: d.queued ? 'digest' : purpose });
      }
    } catch (err) {
      // A failure to notify never changes a decision: the round stays open and answerable from the API.
      log.warn('notification failed', { round, error: String(err) });
      record('NotificationFailed', { round, channel: 'dashboard', recipient: '*', purpose, error: err instanceof Error ? err.message : String(err) });
    }
    await flush();
  };

  /** Records how a closed round ends the run (once per round). */
  const finalizeRound = (n: number) => {
    const r = view!.rounds.find((x) => x.round === n)!;
    if (r.status === 'open' || finalizedRounds.has(n)) return;
    finalizedRounds.add(n);
    const e = input.evaluation;
    const at = iso(Date.now());
    if (r.kind === 'approval') {
      if (r.status === 'approved') {
        const decision = Object.keys(e.constraints).length > 0 ? 'ALLOW_WITH_CONSTRAINTS' : 'ALLOW';
        record('DecisionFinalized', { decision, reason: `approved: ${e.reason}`, matched_rule: e.matched_rule, constraints: e.constraints, via: 'approval' });
      } else if (r.status === 'rejected') {
        const by = r.rejections[0];
        record('DecisionFinalized', { decision: 'DENY', reason: `rejected by ${by?.approver_id}${by?.comment ? `: ${by.comment}` : ''}`, matched_rule: e.matched_rule, constraints: {}, via: 'rejection' });
      } else {
        record('DecisionFinalized', { decision: r.on_timeout, reason: `no answer before ${r.deadline}: fallback ${r.on_timeout}`, matched_rule: e.matched_rule, constraints: r.on_timeout === 'DENY' ? {} : e.constraints, via: 'expiry' });
      }
    } else if (r.status === 'approved') {
      record('OverrideGranted', { round: n, reason: `approved by ${r.approvals.map((a) => a.approver_id).join(', ')}`, at });
      record('DecisionFinalized', { decision: 'ALLOW', reason: `override granted: ${r.justification ?? ''}`, matched_rule: e.matched_rule, constraints: e.constraints, via: 'override' });
    } else {
      const why = r.status === 'rejected' ? `rejected by ${r.rejections[0]?.approver_id}` : `no answer before ${r.deadline}`;
      record('OverrideDenied', { round: n, reason: why, at });
    }
  };

  /** Waits out one round on durable timers: answers arrive through answerUpdate; escalate once, then expire. */
  const runRound = async (n: number) => {
    for (;;) {
      const r = view!.rounds.find((x) => x.round === n)!;
      if (r.status !== 'open') break;
      const left = Date.parse(r.deadline) - Date.now();
      if (left > 0 && (await waitForAnswers(n, left))) break;
      const now = Date.now();
      if (r.level === 0 && r.escalate_to.length > 0) {
        const groups = [...new Set([...r.groups, ...r.escalate_to])];
        record('ApprovalEscalated', { round: n, level: 1, groups, deadline: iso(now + r.level_timeout_sec * 1000) });
        await notify(n, 'escalation', r.escalate_to);
      } else {
        record('ApprovalExpired', { round: n, fallback: r.on_timeout, at: iso(now) });
      }
    }
    finalizeRound(n);
    await flush();
    await announceClosed(n);
  };

  // --- issue 8: reminders and closing notices (helpers kept apart; each behind its patch) -------------
  /**
   * With the 'flush-before-notify' patch: what the notice is about (an escalation's new groups and deadline)
   * is in the log before the notify activity reads it. Runs without the patch notified from the previous state.
   */
  async function flushBeforeNotify(): Promise<void> {
    if (pending.length > 0 && patched(FLUSH_BEFORE_NOTIFY_PATCH)) await flush();
  }
  const remindedLevels = new Set<string>();
  // Reminders run beside the deadline's timer, so a slow delivery never pushes the escalation or expiry back.
  const reminders: Array<Promise<void>> = [];
  /**
   * Waits up to `left` ms for round n to close, as the original single timer did; with the 'reminders'
   * patch, first until the reminder moment of the current level, reminding those who have not answered.
   * True when the round closed.
   */
  const waitForAnswers = async (n: number, left: number): Promise<boolean> => {
    const closed = () => view!.rounds.find((x) => x.round === n)!.status !== 'open';
    const r = view!.rounds.find((x) => x.round === n)!;
    const key = `${n}:${r.level}`;
    if (!remindedLevels.has(key) && patched(REMINDERS_PATCH)) {
      remindedLevels.add(key);
      const now = Date.now();
      const at = reminderAt(input.windows.remind_before, now, Date.parse(r.deadline));
      if (at !== null) {
        if (await condition(closed, at - now)) return true;
        reminders.push(notify(n, 'reminder', r.groups));
        const rest = Date.parse(r.deadline) - Date.now();
        return rest > 0 ? condition(closed, rest) : false;
      }
    }
    return condition(closed, left);
  };
  /**
   * With the 'round-closed-notices' patch: the closed round's Slack messages show how it ended. Started, not
   * awaited: a slow Slack never holds the receipt or the callback; the run waits for it only at its very end.
   */
  const closingNotices: Array<Promise<void>> = [];
  const announceClosed = async (n: number) => {
    await Promise.all(reminders.splice(0));
    if (!patched(ROUND_CLOSED_NOTICE_PATCH)) return;
    closingNotices.push(announceRoundClosed({ decisionId: input.decisionId, tenantId: input.tenantId, round: n }).then(
      (res) => { if (res.errors.length) log.warn('closing notices failed', { round: n, errors: res.errors }); },
      (err: unknown) => { log.warn('closing notices failed', { round: n, error: String(err) }); },
    ));
  };

  // --- messages: the status query at once; the updates once the run's first events are in `view` -----
  setHandler(statusQuery, () => ({
    requestDigest: input.requestDigest,
    requestedBy: input.requestedBy,
    result: view?.decision
      ? toResult(view)
      : {
          decision_id: input.decisionId,
          decision: input.evaluation.decision,
          status: input.evaluation.decision === 'REQUIRE_APPROVAL' ? 'pending_approval' : 'final',
          reason: input.evaluation.reason,
          matched_rule: input.evaluation.matched_rule,
          matched_rules: input.evaluation.matched_rules,
          constraints: input.evaluation.constraints,
          snapshot_hash: input.evaluation.snapshot_hash,
        },
  }));

  // Nonces of the messages accepted into history, and the refusals they earned (see MAX_REFUSED_PER_RUN).
  const nonces = new Set<string>();
  let refusedInRun = 0;
  let inFlight = 0; // accepted messages whose handlers are still running: each may yet be refused
  const refusedOf = new Map<string, number>();
  const refuseFrom = (who: string, reason: string) => {
    refusedInRun += 1;
    refusedOf.set(who, (refusedOf.get(who) ?? 0) + 1);
    return refuse(reason);
  };
  /** What every validator checks first: the right run, a fresh attestation, an unseen nonce, and the refusal caps. */
  const admit = (m: { decision_id: string; nonce: string; attestation: { issued_at: string } }, who: string) => {
    const bad = checkEnvelope(m, { claimed: m.decision_id, actual: input.decisionId, what: 'decision' }, nonces, Date.now());
    if (bad) throw new Error(bad);
    if (refusedInRun + inFlight >= MAX_REFUSED_PER_RUN) throw new Error(`this decision refused ${MAX_REFUSED_PER_RUN} messages already; it accepts no more that could be refused`);
    if ((refusedOf.get(who) ?? 0) >= MAX_REFUSED_PER_PRINCIPAL) throw new Error(`${MAX_REFUSED_PER_PRINCIPAL} messages of this principal were refused by this decision; it accepts no more from it`);
  };

  /** Runs an accepted message's handler: its nonce is spent, and it counts against the cap until it is done. */
  const handle = async <T>(nonce: string, body: () => Promise<T>): Promise<T> => {
    nonces.add(nonce);
    inFlight += 1;
    try {
      return await body();
    } finally {
      inFlight -= 1;
    }
  };

  function registerUpdates(): void {
    setHandler(
      answerUpdate,
      async (a) => handle(a.nonce, async () => {
        // The API's attestation and the approver's current roles and groups, from the database.
        const who = await authorize(a);
        if (!who.ok) throw refuseFrom(a.approver_id, who.reason);
        const check = checkAnswer(view, { ...a, approver_roles: who.roles, approver_groups: who.groups }, new Date(Date.now()));
        if (!check.ok) throw refuseFrom(a.approver_id, check.reason);
        const answer = { round: a.round, approver_id: a.approver_id, channel: a.channel, at: iso(Date.now()), ...(a.comment ? { comment: a.comment } : {}) };
        record(a.verdict === 'approve' ? 'ApprovalGranted' : 'ApprovalRejected', answer);
        finalizeRound(a.round);
        await flush();
        const r = view!.rounds.find((x) => x.round === a.round)!;
        return { counted: true as const, round: a.round, round_status: r.status, decision_status: view!.status === 'final' ? 'final' as const : 'pending_approval' as const };
      }),
      {
        // Cheap checks on the claimed identity before anything reaches history; the handler re-checks with
        // the identity the database confirms.
        validator: (raw: unknown) => {
          const a = parseMessage(messageSchemas().AnswerInput, raw);
          admit(a, a.approver_id);
          const check = checkAnswer(view, { ...a, approver_roles: ['approver'], approver_groups: view?.rounds.find((r) => r.round === a.round)?.groups ?? [] }, new Date(Date.now()));
          if (!check.ok) throw new Error(check.reason);
        },
      },
    );

    setHandler(
      overrideUpdate,
      async (o) => handle(o.nonce, async () => {
        const who = await authorize(o);
        if (!who.ok) throw refuseFrom(o.requested_by, who.reason);
        if (view!.decision !== 'DENY' || view!.status !== 'final' || openRound(view)) throw refuseFrom(o.requested_by, 'no denied decision to override');
        const round = view!.rounds.length + 1;
        const now = Date.now();
        const groups = input.windows.override_groups;
        record('OverrideRequested', { round, requested_by: o.requested_by, justification: o.justification, at: iso(now) });
        record('ApprovalRequested', {
          round, kind: 'override', groups, quorum: 1, deadline: iso(now + input.windows.override_timeout_sec * 1000), escalate_to: [],
          level_timeout_sec: input.windows.override_timeout_sec, on_timeout: 'DENY', requested_by: o.requested_by,
          args_digest: input.argsDigest, snapshot_hash: input.evaluation.snapshot_hash, justification: o.justification,
        });
        await flush();
        return { round, groups, deadline: iso(now + input.windows.override_timeout_sec * 1000) };
      }),
      {
        validator: (raw: unknown) => {
          const o = parseMessage(messageSchemas().OverrideInput, raw);
          admit(o, o.requested_by);
          if (!view || view.status !== 'final' || view.decision !== 'DENY') throw new Error('only a final DENY can be overridden');
          if (openRound(view)) throw new Error('an override request is already waiting for approval');
          if (view.overrides.length >= MAX_OVERRIDES_PER_RUN) throw new Error(`at most ${MAX_OVERRIDES_PER_RUN} override requests per decision`);
          // finalAt is 0 while the run's first task is under way: it became final in this very task.
          if (finalAt > 0 && Date.now() > finalAt + input.windows.override_sec * 1000) throw new Error('the override window has closed');
          if (o.requested_by !== view.requested_by && !o.requester_roles.includes('admin')) throw new Error('only the requesting agent or an admin may ask for an override');
        },
      },
    );

    setHandler(
      outcomeUpdate,
      async (o) => handle(o.nonce, async () => {
        const who = await authorize(o);
        if (!who.ok) throw refuseFrom(o.reported_by, who.reason);
        if (view!.outcome) throw refuseFrom(o.reported_by, 'the outcome was already reported');
        record('OutcomeReported', { status: o.status, output_digest: o.output_digest, reported_by: o.reported_by, at: iso(Date.now()) });
        for (const v of o.violations) record('OutputViolation', v);
        await flush();
        return { violations: o.violations.length };
      }),
      {
        validator: (raw: unknown) => {
          const o = parseMessage(messageSchemas().OutcomeInput, raw);
          admit(o, o.reported_by);
          if (!view || view.status !== 'final') throw new Error('the decision is not final yet');
          if (view.outcome) throw new Error('the outcome was already reported');
          if (o.reported_by !== view.requested_by) throw new Error('only the requesting agent reports the outcome');
        },
      },
    );
  }

  // --- the run -------------------------------------------------------------------------------------
  record('DecisionRequested', {
    decision_id: input.decisionId,
    tenant_id: input.tenantId,
    request: input.request,
    request_digest: input.requestDigest,
    args_digest: input.argsDigest,
    idempotency_key: input.idempotencyKey,
    requested_by: input.requestedBy,
    ...(input.actingPrincipal ? { acting_principal: input.actingPrincipal } : {}),
    // Everything else the run acts on, with the API's signature over the whole start: checked before the
    // first append, and by the auditor from the log. The workflow id is this run's own, never the input's.
    ...(input.attestation ? {
      start: {
        workflow_id: wfId, counter_increments: input.counterIncrements ?? [], windows: input.windows, callback_url: input.callbackUrl ?? null,
        issued_at: input.attestation.issued_at, signature: input.attestation.signature,
      },
    } : {}),
  });
  record('PolicyEvaluated', { evaluation: input.evaluation, policies: input.policies, default_decision: input.defaultDecision });

  const e = input.evaluation;
  const needsApproval = e.decision === 'REQUIRE_APPROVAL';
  if (needsApproval) {
    const a = e.approval as { approvers?: string[]; quorum?: number; timeout_sec?: number; escalate_to?: string[]; escalate_after_sec?: number; on_timeout?: 'DENY' | 'ALLOW' } | undefined;
    const timeout = a?.timeout_sec ?? 3600;
    const first = a?.escalate_after_sec ?? timeout;
    record('ApprovalRequested', {
      round: 1, kind: 'approval', groups: a?.approvers?.length ? a.approvers : ['approvers'], quorum: a?.quorum ?? 1,
      deadline: iso(Date.now() + first * 1000), escalate_to: a?.escalate_to ?? [], level_timeout_sec: timeout,
      on_timeout: a?.on_timeout ?? 'DENY', requested_by: input.requestedBy, args_digest: input.argsDigest,
      snapshot_hash: e.snapshot_hash,
    });
  } else {
    record('DecisionFinalized', { decision: e.decision, reason: e.reason, matched_rule: e.matched_rule, constraints: e.constraints, via: 'policy' });
    // A run final at its start (ALLOW, DENY, constraints) records its events and its receipt in one local
    // activity, so its first workflow task is its only one until the outcome or override window: no activity
    // task and no second workflow task, which is most of what a decision cost the server beyond its start.
    oneTask = patched(FINAL_IN_ONE_TASK_PATCH);
  }
  // Registered here, before the first await and after the run's first events are in `view`. An update that
  // reaches a run in its first task (a worker that died before completing it, an answer sent while no worker
  // ran) is delivered the moment its handler is set: registered earlier, its validator saw no run at all and
  // refused the answer ("the run has not been recorded yet"). Refused updates leave no history, so no
  // recorded run accepted one there and moving the registration changes no replay.
  registerUpdates();
  if (needsApproval) {
    await flush(true);
    // An answer delivered in the first task may already have closed the round: nobody is asked to approve it.
    if (openRound(view)?.round === 1 || !patched(NO_REQUEST_FOR_CLOSED_ROUND_PATCH)) await notify(1, 'request', view!.rounds[0]!.groups);
    await runRound(1);
  } else {
    await flush(true, oneTask);
  }
  finalAt = Date.now();
  if (!oneTask) await issue();
  const callback = input.callbackUrl
    ? deliverCallback({ url: input.callbackUrl, tenantId: input.tenantId, decisionId: input.decisionId, result: toResult(view!) }).catch((err: unknown) => log.warn('callback failed', { error: String(err) }))
    : Promise.resolve();

  // Open after final: overrides (of a DENY) and the outcome report, until their windows close.
  const closeAt = finalAt + Math.max(view!.decision === 'DENY' ? input.windows.override_sec : 0, input.windows.outcome_sec) * 1000;
  for (;;) {
    const left = closeAt - Date.now();
    const woke = left > 0 && (await condition(() => !!openRound(view) || (committed > receiptAt && pending.length === 0 && !openRound(view)), left));
    const round = openRound(view);
    if (round) {
      await notify(round.round, 'request', round.groups);
      await runRound(round.round);
    }
    await issue();
    if (!woke && !openRound(view)) break;
  }
  await callback;
  await Promise.all(closingNotices);
  await condition(allHandlersFinished);
  return toResult(view!);
}
