import { allHandlersFinished, ApplicationFailure, condition, defineQuery, defineUpdate, log, proxyActivities, proxyLocalActivities, setHandler, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import type { Decision, DecisionRequest, DecisionResult, Evaluation } from '../schemas/decision.ts';
import type { ApprovalEdit, JudgmentVerdict } from '../schemas/events.ts';
import type { Activities, AdoptedEvent } from '../activities/types.ts';
import { checkEnvelope, messageSchemas, parseMessage, type AnswerInput, type OutcomeInput, type OverrideInput } from './decision-messages.ts';

export type { AnswerInput, OutcomeInput, OverrideInput };
import { runEventId } from '../services/decisions/ids.ts';
import { evolve, openRound, type RunEvent, type RunView } from '../services/decisions/run-view.ts';
import { decide, runState, type RunCommand } from '../services/decisions/run-decider.ts';
import { sameEvent } from '../services/decisions/same-event.ts';
import { reasonFields } from '../services/decisions/reason-code.ts';
import { approvalRequirementsOf, escalationGroups } from '../services/decisions/approval-requirements.ts';
import { withDelegations } from '../services/decisions/delegation-rules.ts';
import { checklistOf } from '../services/decisions/checklist.ts';
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
  /** The tenant's approval_timeout, if set: already applied to the evaluation; recorded so replay re-applies it. */
  approval_timeout_sec?: number | undefined;
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
  /**
   * The tenant has an evaluator for judgment rules and the evaluation has some: the run asks it (activity
   * judgeRequest) and records its verdicts before opening a round. Absent in every other run.
   */
  judge?: boolean;
  /** The trace the decision was asked in (recorded in DecisionRequested, covered by the signature). */
  trace?: { trace_id: string; span_id: string };
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
const { notifyApprovers, issueReceipt } = proxyActivities<Activities>(storeOptions);
// Appends and the approver check are short Postgres calls: as local activities they run inside the workflow
// task instead of costing a server round trip each (an approve is counted and recorded in one task, not
// three). They stay idempotent (derived event ids), so a local retry after a crash writes nothing new.
// Receipts stay regular activities: a pending local activity holds the task, and with it the approver's answer.
const { appendRunEvents, authorize } = proxyLocalActivities<Activities>(storeOptions);
// Closing notices on Slack are bounded (the activity never throws) and never hold a run.
const { announceRoundClosed } = proxyActivities<Activities>({ startToCloseTimeout: '30 seconds', retry: { maximumAttempts: 3 } });
// The evaluator's own timeout bounds each question (services/judgment); a failed attempt costs nothing, since
// nothing is recorded until the workflow has the verdicts, and people decide if every attempt fails.
const { judgeRequest } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 3, nonRetryableErrorTypes: ['CountersignError'] },
});
const { deliverCallback } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 12 },
});

export function toResult(view: RunView): DecisionResult {
  const checklist = checklistOf(view);
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
    ...approvalRequirementsOf(view),
    ...(checklist.length > 0 ? { checklist } : {}),
    ...(view.edited_args ? { edited_args: view.edited_args, edited_args_digest: view.edited_args_digest ?? '' } : {}),
    ...(view.trace_id ? { trace_id: view.trace_id } : {}),
  };
}

/** A command the run decided; decided again after an adoption, it may be refused then (see adopt). */
type Entry = {
  command: RunCommand; refused: string | null; wrote: boolean;
  /**
   * An answer decided with the identity the API attested, not yet confirmed by the database: the append that
   * would write its events first checks the approver is that identity now (see appendPending).
   */
  unconfirmed?: { message: AnswerInput; roles: string[]; groups: string[] };
};
type Pending = { entry: Entry; event: RunEvent };
/** Adoptions in a row after which an append is a bug, not a lost attempt (there is at most one such attempt per task). */
const MAX_ADOPTIONS = 5;

const refuse = (reason: string) => ApplicationFailure.create({ type: 'AnswerRefused', message: reason, nonRetryable: true });
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * One decision, durably. Deterministic code only: the decision was evaluated (purely) by the API before the
 * start and arrives as input with its snapshot hash (a run keeps the snapshot it started with). I/O happens
 * in activities; the clock is Temporal's. Every step is an event, folded with the shared `evolve`.
 */
export async function decisionWorkflow(input: DecisionWorkflowInput): Promise<DecisionResult> {
  const wfId = workflowInfo().workflowId;
  let view: RunView | null = null; // the log's view and the events still pending
  let committedView: RunView | null = null; // the log's view up to `committed`
  let committed = 0; // versions known to be in the log
  let pending: Pending[] = [];
  /** Events an earlier attempt of a task wrote and this execution adopted from the log (see adopt). */
  const adopted: Array<{ event: RunEvent; claimed: boolean }> = [];
  let goAheadInLog = false; // the log holds a DecisionFinalized that lets the action go ahead
  let countersCounted = false;
  let countersDue: { at: string; entries: Array<{ key: string; amount: number }> } | null = null;
  let chain: Promise<void> = Promise.resolve();
  let receiptAt = 0; // the version of the last receipt
  let finalAt = 0; // when the run became final (0 while its first task is under way)

  /** Answers decided with their attested identity whose append has not confirmed it yet (see Entry.unconfirmed). */
  const unconfirmedEntries = new Set<Entry>();
  const goesAhead = (e: RunEvent) => e.type === 'DecisionFinalized' && e.data.decision !== 'DENY';
  const record = (entry: Entry, e: RunEvent) => {
    // Decided again after an adoption, a command may yield an event the earlier attempt already wrote: it is
    // in the view with the rest of the log, and is not written twice.
    const twin = adopted.find((a) => !a.claimed && sameEvent(a.event, e));
    if (twin) {
      twin.claimed = true;
      return;
    }
    pending.push({ entry, event: e });
    view = evolve(view, e);
    // The action goes ahead: its counters are written in the same transaction as this event.
    if (goesAhead(e) && input.counterIncrements?.length && !countersCounted) {
      countersCounted = true;
      countersDue = { at: input.evaluation.now, entries: input.counterIncrements };
    }
  };
  const decideNow = (entry: Entry): void => {
    const d = decide(runState(view), entry.command, new Date(Date.now()));
    entry.refused = d.ok ? null : d.reason;
    if (d.ok) for (const e of d.events) record(entry, e);
    else if (entry.unconfirmed) {
      // Refused when decided again (after an adoption): no event of it is left to confirm.
      delete entry.unconfirmed;
      unconfirmedEntries.delete(entry);
    }
  };
  /** What the rules make of a command now: its events are recorded, or the entry carries the refusal's reason. */
  const apply = (command: RunCommand): Entry => {
    const entry: Entry = { command, refused: null, wrote: false };
    decideNow(entry);
    return entry;
  };
  /** The same, for a command the workflow itself issues: a refusal there is a bug, never an input's fault... */
  const must = (command: RunCommand): boolean => {
    const { refused } = apply(command);
    // ...unless the run adopted what an earlier attempt of a task wrote, which may have done it already, or an
    // answer not yet confirmed (see Entry.unconfirmed) stands in the view: the caller looks again once it is.
    if (refused !== null && adopted.length === 0 && unconfirmedEntries.size === 0) throw new Error(`the run refused its own ${command.type}: ${refused}`);
    return refused === null;
  };
  /**
   * The log holds events this execution did not write: a worker committed them in a local activity and died
   * before Temporal recorded the task that ran it, so this attempt of the task started without them. The log
   * is the truth (an agent may already have been answered from it): they are folded in as they stand, and the
   * commands whose events did not go in, with those recorded since, are decided again on top of them. A
   * command refused now stays refused; its handler answers from what the log says.
   */
  const adopt = (unwritten: Pending[], events: AdoptedEvent[], settled: ReadonlySet<Entry> = new Set(), why = 'adopting the log') => {
    for (const e of events) {
      const event = { type: e.type, data: e.data } as RunEvent;
      committedView = evolve(committedView, event);
      adopted.push({ event, claimed: false });
      if (goesAhead(event)) goAheadInLog = true;
      if (event.type === 'ReceiptIssued') receiptAt = e.stream_version;
    }
    const redo: Entry[] = [];
    for (const p of [...unwritten, ...pending]) if (!redo.includes(p.entry) && !settled.has(p.entry)) redo.push(p.entry);
    pending = [];
    view = committedView;
    countersCounted = goAheadInLog;
    countersDue = null;
    for (const entry of redo) {
      decideNow(entry);
      // A command with an event in the log before the rest diverged has counted.
      if (entry.refused !== null && entry.wrote) entry.refused = null;
      if (entry.refused !== null) log.warn(`a command decided again after ${why} was refused`, { command: entry.command.type, reason: entry.refused });
    }
  };
  /** Resolved once the run's first append is in the chain: message handlers take their turns after it. */
  let firstAppendIsQueued!: () => void;
  const firstAppendQueued = new Promise<void>((resolve) => { firstAppendIsQueued = resolve; });
  /** Appends what is pending, adopting what the log holds instead where it differs, until nothing is pending. */
  const appendPending = async (first: boolean, withReceipt: boolean) => {
    for (let tries = 0; pending.length > 0; tries++) {
      if (tries === MAX_ADOPTIONS) throw new Error(`the run's appends did not settle after ${tries} adoptions`);
      const batch = pending;
      pending = [];
      const counters = countersDue;
      countersDue = null;
      const sealing = withReceipt && committed === 0;
      const unconfirmed = [...new Set(batch.map((p) => p.entry))].filter((e) => e.unconfirmed);
      const res = await appendRunEvents({
        decisionId: input.decisionId,
        tenantId: input.tenantId,
        expectedVersion: committed,
        events: batch.map((p, i) => ({ ...p.event, eventId: runEventId(input.decisionId, committed + i + 1) })),
        workflowId: wfId,
        ...(counters ? { counters } : {}),
        ...(first && input.idempotencyKey ? { idempotency: { key: input.idempotencyKey, requestDigest: input.requestDigest } } : {}),
        ...(sealing ? { withReceipt: true } : {}),
        ...(unconfirmed.length > 0 ? { identities: unconfirmed.map((e) => ({ message: e.unconfirmed!.message, roles: e.unconfirmed!.roles, groups: e.unconfirmed!.groups })) } : {}),
      });
      if (res.identities) {
        // An approver is not (or no longer) who the API attested: nothing was written. Each such answer is
        // decided again with the identity the database gave, or refused; the batch is decided again around it.
        const refusedNow = new Set<Entry>();
        unconfirmed.forEach((e, i) => {
          const who = res.identities![i]!;
          delete e.unconfirmed;
          unconfirmedEntries.delete(e);
          if (who === 'same') return;
          if (!who.ok) {
            e.refused = who.reason;
            refusedNow.add(e);
            return;
          }
          if (e.command.type === 'AnswerRound') e.command = withDelegations({ ...e.command, data: { ...e.command.data, approver_roles: who.roles, approver_groups: who.groups } }, who.delegations);
        });
        adopt(batch, [], refusedNow, "an approver's identity was corrected");
        continue;
      }
      for (const e of unconfirmed) {
        delete e.unconfirmed;
        unconfirmedEntries.delete(e);
      }
      const written = res.written ?? batch.length;
      for (const p of batch.slice(0, written)) {
        committedView = evolve(committedView, p.event);
        p.entry.wrote = true;
        if (goesAhead(p.event)) goAheadInLog = true;
      }
      // The run's first events and their receipt, appended by the same activity (the receipt follows them).
      if (sealing && (res.sealed ?? true)) receiptAt = committed + written + 1;
      committed = res.streamVersion;
      if (written < batch.length || (res.adopted?.length ?? 0) > 0) adopt(batch.slice(written), res.adopted ?? []);
    }
  };
  // Appends are serialised: each batch expects the version the previous one left, so concurrent handlers
  // cannot interleave, and a retried activity finds its events by their derived ids.
  const flush = (first = false, withReceipt = false): Promise<void> => {
    chain = chain.then(() => appendPending(first, withReceipt));
    firstAppendIsQueued();
    return chain;
  };
  /**
   * Every local activity of the run takes its turn in the one chain, never two at once. Local activities that
   * overlap (an override's or outcome's authorize beside a notice's append) complete live in wall-clock order but are resolved
   * on replay in the order they started, so code that branches on which came first (is the round still open?)
   * would start different timers on replay: a nondeterminism error for a run evicted from the worker's cache.
   * A failed append still fails every later append; the authorize waits for it and runs regardless.
   */
  const inTurn = <T>(fn: () => Promise<T>): Promise<T> => {
    const turn = chain.then(fn, fn);
    chain = chain.then(() => turn.then(() => undefined, () => undefined));
    return turn;
  };
  // The receipt covers the log as it stands when its turn comes in the serial chain, after every batch before
  // it: an outcome or override handled while it is being signed is appended after it.
  const issue = (): Promise<void> => {
    void flush();
    chain = chain.then(async () => {
      for (let tries = 0; committed > receiptAt; tries++) {
        if (tries === MAX_ADOPTIONS) throw new Error(`the run's receipt did not settle after ${tries} adoptions`);
        const head = committed;
        const res = await issueReceipt({ decisionId: input.decisionId, tenantId: input.tenantId, headVersion: head, workflowId: wfId });
        committed = res.streamVersion;
        if (!res.adopted) {
          receiptAt = committed;
          break;
        }
        if (res.issued) receiptAt = head + 1;
        adopt([], res.adopted);
        await appendPending(false, false);
      }
    });
    return chain;
  };

  const notify = async (round: number, purpose: 'request' | 'escalation' | 'reminder', groups: string[], level?: number) => {
    await flushBeforeNotify();
    try {
      const deliveries = await notifyApprovers({ decisionId: input.decisionId, tenantId: input.tenantId, round, purpose, groups, requestedBy: input.requestedBy, ...(level !== undefined ? { level } : {}) });
      must({ type: 'RecordDeliveries', data: { round, purpose, deliveries } });
    } catch (err) {
      // A failure to notify never changes a decision: the round stays open and answerable from the API.
      log.warn('notification failed', { round, error: String(err) });
      must({ type: 'RecordDeliveries', data: { round, purpose, deliveries: [{ channel: 'dashboard', recipient: '*', error: err instanceof Error ? err.message : String(err) }] } });
    }
    await flush();
  };

  /** Waits out one round on durable timers: answers arrive through answerUpdate; escalate once, then expire. */
  const runRound = async (n: number) => {
    for (;;) {
      const r = view!.rounds.find((x) => x.round === n)!;
      if (r.status !== 'open') {
        // An answer decided with its attested identity closes the round in the view before its append has
        // confirmed that identity: the round is closed once nothing unconfirmed stands.
        if (unconfirmedEntries.size === 0) break;
        await flush();
        continue;
      }
      const left = Date.parse(r.deadline) - Date.now();
      if (left > 0 && (await waitForAnswers(n, left))) continue;
      // The deadline passed: the rules escalate the round once if it may, or expire it and end the run.
      if (!must({ type: 'ReachDeadline', data: { round: n } })) continue;
      const escalated = escalationGroups(r, view!.rounds.find((x) => x.round === n)!);
      if (escalated !== null) await notify(n, 'escalation', escalated);
    }
    await flush();
    await announceClosed(n);
  };

  // --- reminders and closing notices -------------------------------------------------------------------
  /** What a notice is about (an escalation's new groups and deadline) is in the log before the notify activity reads it. */
  async function flushBeforeNotify(): Promise<void> {
    if (pending.length > 0) await flush();
  }
  const remindedLevels = new Set<string>();
  // Reminders run beside the deadline's timer, so a slow delivery never pushes the escalation or expiry back.
  const reminders: Array<Promise<void>> = [];
  /**
   * Waits up to `left` ms for round n to close: first until the reminder moment of the current level (once per
   * level), reminding those who have not answered. True when the round closed.
   */
  const waitForAnswers = async (n: number, left: number): Promise<boolean> => {
    const closed = () => view!.rounds.find((x) => x.round === n)!.status !== 'open';
    const r = view!.rounds.find((x) => x.round === n)!;
    const key = `${n}:${r.level}`;
    if (!remindedLevels.has(key)) {
      remindedLevels.add(key);
      const now = Date.now();
      const at = reminderAt(input.windows.remind_before, now, Date.parse(r.deadline));
      if (at !== null) {
        if (await condition(closed, at - now)) return true;
        // The level it reminds of, fixed now: a reminder delivered after an escalation must not take the next level's place.
        reminders.push(notify(n, 'reminder', r.groups, r.level));
        const rest = Date.parse(r.deadline) - Date.now();
        return rest > 0 ? condition(closed, rest) : false;
      }
    }
    return condition(closed, left);
  };
  /**
   * The closed round's Slack messages show how it ended. Started, not awaited: a slow Slack never holds the
   * receipt or the callback; the run waits for it only at its very end.
   */
  const closingNotices: Array<Promise<void>> = [];
  const announceClosed = async (n: number) => {
    await Promise.all(reminders.splice(0));
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

  /**
   * Runs an accepted message's handler: its nonce is spent, and it counts against the cap until it is done. The
   * body waits until the run's first append is queued: a message delivered in the run's first task would
   * otherwise take its local activities' turn before that append, or after it, depending on whether Temporal
   * delivers it in the same activation as the start, which a retried task and its replay need not agree on.
   */
  const handle = async <T>(nonce: string, body: () => Promise<T>): Promise<T> => {
    nonces.add(nonce);
    inFlight += 1;
    try {
      await firstAppendQueued;
      return await body();
    } finally {
      inFlight -= 1;
    }
  };

  const answerCommand = (a: AnswerInput, roles: string[], groups: string[]): RunCommand => ({
    type: 'AnswerRound',
    data: {
      round: a.round, verdict: a.verdict, approver_id: a.approver_id, approver_roles: roles, approver_groups: groups, tenant_id: a.tenant_id,
      channel: a.channel, comment: a.comment, args_digest: a.args_digest, snapshot_hash: a.snapshot_hash,
      // Built by the API from the run's own snapshot and under its MAC; the decider checks it is no looser.
      ...(a.edit ? { edit: a.edit as ApprovalEdit } : {}),
    },
  });
  const overrideCommand = (o: OverrideInput): RunCommand => ({
    type: 'RequestOverride',
    data: {
      requested_by: o.requested_by, requester_roles: o.requester_roles, justification: o.justification, max_overrides: MAX_OVERRIDES_PER_RUN,
      settings: { groups: input.windows.override_groups, timeout_sec: input.windows.override_timeout_sec, window_sec: input.windows.override_sec },
      // finalAt is 0 while the run's first task is under way: it became final in this very task.
      final_at: finalAt > 0 ? iso(finalAt) : null,
    },
  });
  const outcomeCommand = (o: OutcomeInput): RunCommand => ({
    type: 'ReportOutcome',
    data: { reported_by: o.reported_by, status: o.status, output_digest: o.output_digest, violations: o.violations },
  });

  // A message an earlier attempt of a task handled and recorded before its worker died comes again in the next
  // attempt: the log, adopted, already has it. It is answered as counted, not refused as a second answer.
  const adoptedOf = <K extends RunEvent['type']>(type: K) => adopted.map((a) => a.event).filter((e): e is Extract<RunEvent, { type: K }> => e.type === type);
  const answeredBefore = (a: AnswerInput) =>
    adoptedOf(a.verdict === 'approve' ? 'ApprovalGranted' : 'ApprovalRejected').some((e) => e.data.round === a.round && e.data.approver_id === a.approver_id);
  const overrideBefore = (o: OverrideInput): number | null => adoptedOf('OverrideRequested').findLast((e) => e.data.requested_by === o.requested_by)?.data.round ?? null;
  const reportedBefore = (o: OutcomeInput) => adoptedOf('OutcomeReported').some((e) => e.data.reported_by === o.reported_by);

  function registerUpdates(): void {
    setHandler(
      answerUpdate,
      async (a) => handle(a.nonce, async () => {
        // Decided with the roles and groups the API attested; the append that writes the answer checks them
        // against the database first (and the API's attestation), in the same local activity.
        const entry = apply(answerCommand(a, a.approver_roles, a.approver_groups));
        if (entry.refused === null) {
          entry.unconfirmed = { message: a, roles: a.approver_roles, groups: a.approver_groups };
          unconfirmedEntries.add(entry);
          await flush();
        }
        if (entry.refused !== null && !answeredBefore(a)) throw refuseFrom(a.approver_id, entry.refused);
        const r = view!.rounds.find((x) => x.round === a.round)!;
        return { counted: true as const, round: a.round, round_status: r.status, decision_status: view!.status === 'final' ? 'final' as const : 'pending_approval' as const };
      }),
      {
        // Cheap checks on the claimed identity before anything reaches history; the handler re-checks with
        // the identity the database confirms.
        validator: (raw: unknown) => {
          const a = parseMessage(messageSchemas().AnswerInput, raw);
          admit(a, a.approver_id);
          const d = decide(runState(view), answerCommand(a, ['approver'], view?.rounds.find((r) => r.round === a.round)?.groups ?? []), new Date(Date.now()));
          if (!d.ok && !answeredBefore(a)) throw new Error(d.reason);
        },
      },
    );

    setHandler(
      overrideUpdate,
      async (o) => handle(o.nonce, async () => {
        const who = await inTurn(() => authorize(o));
        if (!who.ok) throw refuseFrom(o.requested_by, who.reason);
        const entry = apply(overrideCommand(o));
        if (entry.refused === null) await flush();
        const earlier = entry.refused === null ? null : overrideBefore(o);
        if (entry.refused !== null && earlier === null) throw refuseFrom(o.requested_by, entry.refused);
        // The round this request opened: the newest one, or the one an earlier attempt opened for it.
        const r = view!.rounds.find((x) => x.round === earlier) ?? view!.rounds.at(-1)!;
        return { round: r.round, groups: r.groups, deadline: r.deadline };
      }),
      {
        validator: (raw: unknown) => {
          const o = parseMessage(messageSchemas().OverrideInput, raw);
          admit(o, o.requested_by);
          const d = decide(runState(view), overrideCommand(o), new Date(Date.now()));
          if (!d.ok && overrideBefore(o) === null) throw new Error(d.reason);
        },
      },
    );

    setHandler(
      outcomeUpdate,
      async (o) => handle(o.nonce, async () => {
        const who = await inTurn(() => authorize(o));
        if (!who.ok) throw refuseFrom(o.reported_by, who.reason);
        const entry = apply(outcomeCommand(o));
        if (entry.refused === null) await flush();
        if (entry.refused !== null && !reportedBefore(o)) throw refuseFrom(o.reported_by, entry.refused);
        return { violations: o.violations.length };
      }),
      {
        validator: (raw: unknown) => {
          const o = parseMessage(messageSchemas().OutcomeInput, raw);
          admit(o, o.reported_by);
          const d = decide(runState(view), outcomeCommand(o), new Date(Date.now()));
          if (!d.ok && !reportedBefore(o)) throw new Error(d.reason);
        },
      },
    );
  }

  // --- the run -------------------------------------------------------------------------------------
  const awaitingJudgment = input.judge === true && input.evaluation.decision === 'REQUIRE_APPROVAL' && input.evaluation.judgment !== undefined;
  must({
    type: 'StartRun',
    data: {
      requested: {
        decision_id: input.decisionId,
        tenant_id: input.tenantId,
        request: input.request,
        request_digest: input.requestDigest,
        args_digest: input.argsDigest,
        idempotency_key: input.idempotencyKey,
        requested_by: input.requestedBy,
        ...(input.actingPrincipal ? { acting_principal: input.actingPrincipal } : {}),
        ...(input.trace ? { trace: input.trace } : {}),
        // Everything else the run acts on, with the API's signature over the whole start: checked before the
        // first append, and by the auditor from the log. The workflow id is this run's own, never the input's.
        ...(input.attestation ? {
          start: {
            workflow_id: wfId, counter_increments: input.counterIncrements ?? [], windows: input.windows, callback_url: input.callbackUrl ?? null,
            ...(input.judge ? { judge: true as const } : {}),
            issued_at: input.attestation.issued_at, signature: input.attestation.signature,
          },
        } : {}),
      },
      evaluated: { evaluation: input.evaluation, policies: input.policies, default_decision: input.defaultDecision },
      ...(awaitingJudgment ? { awaiting_judgment: true } : {}),
    },
  });
  // Registered here, before the first await and after the run's first events are in `view`: an update that
  // reaches a run in its first task (a worker that died before completing it, an answer sent while no worker
  // ran) is delivered the moment its handler is set, and its validator must see the run.
  registerUpdates();
  if (awaitingJudgment) {
    // The request and its evaluation are in the log before the evaluator is asked; its verdicts are recorded
    // before the decision they lead to. An evaluator that cannot be asked leaves the decision to people.
    await flush(true);
    const checklist = input.evaluation.judgment!.checklist;
    let judged: { verdicts: JudgmentVerdict[]; model: string };
    try {
      judged = await judgeRequest({ tenantId: input.tenantId, decisionId: input.decisionId, request: input.request, checklist });
    } catch (err) {
      const reason = `the evaluator could not be asked: ${err instanceof Error ? err.message : String(err)}`.slice(0, 500);
      judged = { verdicts: checklist.map((j) => ({ policy_id: j.policy_id, version: j.version, rule: j.rule, verdict: 'error' as const, reason })), model: '' };
    }
    must({ type: 'RecordVerdicts', data: { verdicts: judged.verdicts, model: judged.model, at: iso(Date.now()) } });
  }
  const needsApproval = view!.status === 'pending_approval';
  if (needsApproval) {
    await flush(!awaitingJudgment);
    // An answer delivered in the first task may already have closed the round: nobody is asked to approve it.
    if (openRound(view)?.round === 1) await notify(1, 'request', view!.rounds[0]!.groups);
    await runRound(1);
  } else {
    // A run final at its start (ALLOW, DENY, constraints) records its events and its receipt in one local
    // activity, so its first workflow task is its only one until the outcome or override window: no activity
    // task and no second workflow task, which is most of what a decision costs the server beyond its start.
    // Final after the evaluator's verdicts: the run's first events are in already, so its receipt is issued
    // by its own activity, as after an approval.
    if (awaitingJudgment) await issue();
    else await flush(true, true);
  }
  finalAt = Date.now();
  if (needsApproval) await issue();
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
