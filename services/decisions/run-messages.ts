import type { JudgmentItem } from '../../schemas/decision.ts';
import { checklistOf } from './checklist.ts';
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import {
  answerUpdate, outcomeUpdate, overrideUpdate,
  type AnswerInput, type AnswerResult, type OutcomeInput, type OutcomeResult, type OverrideInput, type OverrideResult,
} from '../../workflows/decision-workflow.ts';
import { CountersignError } from '../errors.ts';
import { withTenant, type Db } from '../events/db.ts';
import type { Principal } from '../identity/principals.ts';
import { evaluateOutcome, type Outcome } from '../policy/index.ts';
import { sha256Digest } from '../receipts/canonical.ts';
import { attest, newNonce } from './attestation.ts';
import { readStreams } from '../events/read-events.ts';
import { isKnownEventType } from '../../schemas/events.ts';
import { openRoundsFor } from './approval-inbox.ts';
import { runStreamId, workflowIdFor } from './ids.ts';
import { loadTenantRunView, notFound } from './read-decision.ts';
import { asTemporalError } from './request-decision.ts';
import { checkAnswer, foldRun, openRound, type Round, type RunEvent, type RunView } from './run-view.ts';
import { snapshotForRun } from './run-snapshot.ts';
import { requirementSummaries, type RequirementSummary } from './approval-requirements.ts';
import { agentHistories, type HistoryEntry } from './agent-history.ts';
import { checkApprovalEdit } from './run-decider.ts';
import { editsAllowed } from './approval-edit.ts';
import { evaluateEdit } from './evaluate-edit.ts';
import { sendUpdate, updateIdOf } from '../temporal/send-update.ts';

export type MessageDeps = { db: Db; temporal: Client; secret: () => Buffer };

/** How long a message waits for a run Temporal has started but whose first events are not written yet. */
const FIRST_EVENTS_WAIT_MS = 5_000;

async function runOf(deps: MessageDeps, principal: Principal, decisionId: string): Promise<RunView> {
  const load = () => loadTenantRunView(deps.db, principal.tenant_id, decisionId);
  let view = await load();
  let started = false;
  if (!view) {
    // Answered before the workflow wrote its first events: only a run this tenant started is worth waiting for.
    started = await deps.temporal.workflow.getHandle(workflowIdFor(principal.tenant_id, decisionId)).describe().then(() => true, () => false);
    const deadline = Date.now() + FIRST_EVENTS_WAIT_MS;
    while (started && !view && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      view = await load();
    }
  }
  if (!view && started) {
    // Temporal has the run but no worker has recorded its first events yet (one died with the task in flight,
    // or none runs): the decision exists, so the caller is told to try again, not that it does not.
    throw new CountersignError('dependency_unavailable', `decision ${decisionId} is started but its first events are not recorded yet; try again shortly`, { extra: { dependency: 'temporal' } });
  }
  if (!view || view.tenant_id !== principal.tenant_id) throw notFound(decisionId);
  return view;
}

async function send<R>(deps: MessageDeps, tenantId: string, decisionId: string, fn: (h: ReturnType<Client['workflow']['getHandle']>) => Promise<R>, refusedCode: 'answer_refused' | 'conflict'): Promise<R> {
  const handle = deps.temporal.workflow.getHandle(workflowIdFor(tenantId, decisionId));
  try {
    return await sendUpdate(deps.temporal, () => fn(handle));
  } catch (err) {
    if (err instanceof CountersignError) throw err;
    if (err instanceof WorkflowUpdateFailedError) {
      const reason = (err.cause)?.message ?? err.message;
      throw new CountersignError(refusedCode, reason, { extra: { counted: false } });
    }
    if (/workflow execution already completed|not found/i.test(String((err as Error)?.message))) {
      throw new CountersignError('conflict', 'the decision is closed: its override and outcome windows have passed');
    }
    throw asTemporalError(err);
  }
}

export type AnswerBody = { verdict: 'approve' | 'reject'; comment?: string | undefined; round?: number | undefined; args_digest?: string | null | undefined; edited_args?: Record<string, unknown> | undefined };

/**
 * Every check an answer passes before it is sent (the run's rules with the caller's roles and groups, the edit
 * re-evaluated against the run's snapshot), and the attested message that carries it. Refused with the reason
 * (a CountersignError) otherwise. A channel may ask this first to keep a form open for a correction.
 */
export async function checkedAnswer(deps: MessageDeps, principal: Principal, decisionId: string, body: AnswerBody, channel: AnswerInput['channel']): Promise<AnswerInput> {
  const view = await runOf(deps, principal, decisionId);
  const round = body.round !== undefined ? view.rounds.find((r) => r.round === body.round) : openRound(view) ?? view.rounds[view.rounds.length - 1];
  if (!round) throw new CountersignError('answer_refused', 'the decision has no approval round', { extra: { counted: false } });
  if (body.args_digest !== undefined && body.args_digest !== round.args_digest) {
    throw new CountersignError('answer_refused', 'the answer is for other arguments than the round is bound to', { extra: { counted: false } });
  }
  // The run's checks with the caller's own roles and groups, before anything is sent: an answer that cannot
  // count never reaches the workflow, so no number of them grows its history. The workflow checks again.
  const check = checkAnswer(view, {
    round: round.round, verdict: body.verdict, approver_id: principal.id, tenant_id: principal.tenant_id, approver_roles: principal.roles, approver_groups: principal.groups,
    args_digest: round.args_digest, snapshot_hash: round.snapshot_hash,
  }, new Date());
  if (!check.ok) throw new CountersignError('answer_refused', check.reason, { extra: { counted: false } });
  // Approve with edit: the edited arguments evaluated against the run's own snapshot, judged by the run's rules
  // here (a refusal never reaches the workflow) and again in the workflow; the MAC covers them and their digest.
  const edit = body.edited_args === undefined ? undefined : await withTenant(deps.db, principal.tenant_id, (c) => evaluateEdit(c, view, body.edited_args!));
  const editRefused = checkApprovalEdit(view, round, body.verdict, edit);
  if (editRefused !== null) throw new CountersignError('answer_refused', editRefused, { extra: { counted: false } });
  return attest(deps.secret(), {
    kind: 'answer' as const,
    decision_id: decisionId,
    nonce: newNonce(),
    round: round.round,
    verdict: body.verdict,
    ...(body.comment ? { comment: body.comment } : {}),
    channel,
    approver_id: principal.id,
    // The run decides with these; the worker confirms them against the database in the append that writes the answer.
    approver_roles: [...principal.roles],
    approver_groups: [...principal.groups],
    tenant_id: principal.tenant_id,
    args_digest: round.args_digest,
    snapshot_hash: round.snapshot_hash,
    ...(edit ? { edit } : {}),
  }, new Date());
}

/** An approver's answer (POST /v1/decisions/{id}/approvals, Slack, email). Counted when this returns; refused with the reason otherwise. */
export async function answerApproval(deps: MessageDeps, principal: Principal, decisionId: string, body: AnswerBody, channel: AnswerInput['channel']): Promise<AnswerResult> {
  const message = await checkedAnswer(deps, principal, decisionId, body, channel);
  return send(deps, principal.tenant_id, decisionId, (h) => h.executeUpdate(answerUpdate, { args: [message], updateId: updateIdOf(message) }), 'answer_refused');
}

/** An agent asks to lift a DENY (POST /v1/decisions/{id}/override): a new round for the override approvers. */
export async function requestOverride(deps: MessageDeps, principal: Principal, decisionId: string, justification: string): Promise<OverrideResult> {
  await runOf(deps, principal, decisionId);
  const message: OverrideInput = attest(deps.secret(), {
    kind: 'override' as const,
    decision_id: decisionId,
    nonce: newNonce(),
    requested_by: principal.id,
    requester_roles: principal.roles,
    tenant_id: principal.tenant_id,
    justification,
  }, new Date());
  return send(deps, principal.tenant_id, decisionId, (h) => h.executeUpdate(overrideUpdate, { args: [message], updateId: updateIdOf(message) }), 'conflict');
}

/** What the tool did (POST /v1/decisions/{id}/outcome), checked against the run's own output rules. */
export async function reportOutcome(deps: MessageDeps, principal: Principal, decisionId: string, outcome: Outcome): Promise<OutcomeResult & { output_digest: string; violations_found: Array<{ policy_id: string; rule: string; reason: string }> }> {
  const view = await runOf(deps, principal, decisionId);
  const { snapshot, request } = await withTenant(deps.db, principal.tenant_id, async (c) => {
    const snap = await snapshotForRun(c, view);
    const req = await c.query<{ data: { request: Parameters<typeof evaluateOutcome>[1] } }>(
      `SELECT data FROM events WHERE stream_id = $1 AND type = 'DecisionRequested'`, [runStreamId(decisionId)],
    );
    return { snapshot: snap, request: req.rows[0]!.data.request };
  });
  // The recorded facts carry the tool catalog's tags (facts.tool_catalog): output rules see them too.
  const checked = evaluateOutcome(snapshot, request, outcome, new Date(), view.evaluation?.facts ?? {});
  const violations = checked.violations.map((v) => ({ policy_id: v.policy_id, rule: v.rule, reason: v.reason }));
  const output_digest = sha256Digest(outcome.output ?? null);
  const message: OutcomeInput = attest(deps.secret(), {
    kind: 'outcome' as const,
    decision_id: decisionId,
    nonce: newNonce(),
    reported_by: principal.id,
    tenant_id: principal.tenant_id,
    status: outcome.status,
    output_digest,
    violations,
  }, new Date());
  const res = await send(deps, principal.tenant_id, decisionId, (h) => h.executeUpdate(outcomeUpdate, { args: [message], updateId: updateIdOf(message) }), 'conflict');
  return { ...res, output_digest, violations_found: violations };
}

export type PendingApproval = {
  decision_id: string;
  round: number;
  kind: 'approval' | 'override';
  agent_id: string;
  tool: string;
  operation: string | null;
  reason: string;
  matched_rule: string | null;
  groups: string[];
  quorum: number;
  approvals: number;
  deadline: string;
  args_digest: string | null;
  snapshot_hash: string;
  justification: string | null;
  /** A round of requirements: each one and where it stands (every one must approve). */
  requirements?: RequirementSummary[];
  /** The judgment rules the approvers check (approval rounds of requests judgment rules applied to). */
  checklist?: JudgmentItem[];
  /** The constraints that will apply when the round approves. */
  constraints: Record<string, unknown>;
  /** The request's arguments as the agent sent them (the round is bound to their digest). */
  args: unknown;
  /** The policy versions that decided the run. */
  policies: Array<{ policy_id: string; version: number }>;
  /** Who answered this round so far (the caller never, or the round would not be in its inbox). */
  answers: Array<{ approver_id: string; verdict: 'approve' | 'reject'; channel: string; at: string; comment: string | null }>;
  on_timeout: 'DENY' | 'ALLOW';
  escalate_to: string[];
  /** The agent's last decisions for the same tool before this one, newest first. */
  history: HistoryEntry[];
  /** Whether an approval may change the arguments (approve with edit): an approval round whose rules allow it. */
  edits_allowed: boolean;
  /** When the round's approvals so far approved changed arguments: those (every further approval must approve the same). */
  edited_args?: Record<string, unknown>;
  edited_args_digest?: string;
  edited_by?: string | null;
};

/**
 * Rows the projection may list that the run's fold shows closed: a round of requirements between the approval
 * that completed it and the run's DecisionFinalized, appended right after. Read beyond the page so that such a
 * round never shortens it.
 */
const CLOSING_SLACK = 8;

/**
 * Rounds waiting for this approver: open, in one of their groups, not their own request, not answered by them or
 * for them. Chosen from the inbox projection (approval-inbox.ts: one index range per group, soonest deadline
 * first), then each run of the page is read in one query and folded, and the round checked against the fold
 * (the projection chooses; the run's own rules have the last word), all in one tenant-scoped transaction.
 */
export async function pendingApprovals(deps: MessageDeps, principal: Principal, limit = 100): Promise<PendingApproval[]> {
  if (principal.groups.length === 0) return [];
  const out = await withTenant(deps.db, principal.tenant_id, async (c) => {
    const rows = await openRoundsFor(c, principal, limit + CLOSING_SLACK);
    const streams = await readStreams(c, [...new Set(rows.map((r) => r.stream_id))]);
    const open: Array<{ view: RunView; round: Round; events: ReadonlyArray<{ type: string; data: unknown }> }> = [];
    for (const row of rows) {
      if (open.length >= limit) break;
      const events = streams.get(row.stream_id) ?? [];
      const view = foldRun(events.filter((e) => isKnownEventType(e.type)).map((e) => ({ type: e.type, data: e.data }) as RunEvent));
      const r = openRound(view);
      if (!view || !r || r.round !== row.round || view.tenant_id !== principal.tenant_id) continue;
      if (!principal.groups.some((g) => r.groups.includes(g)) || view.requested_by === principal.id || r.requested_by === principal.id) continue;
      if ([...r.approvals, ...r.rejections].some((a) => a.approver_id === principal.id || a.on_behalf_of === principal.id)) continue;
      open.push({ view, round: r, events });
    }
    const histories = await agentHistories(c, principal.tenant_id, open.map((o) => ({ decision_id: o.view.decision_id, agent_id: o.view.agent_id, tool: o.view.action.tool })));
    const items = open.map((o) => pendingItem(o.view, o.round, o.events, histories.get(o.view.decision_id) ?? []));
    return items;
  });
  return out.sort((a, b) => a.deadline.localeCompare(b.deadline));
}

/** What an approver sees of one open round. */
function pendingItem(view: RunView, r: Round, events: ReadonlyArray<{ type: string; data: unknown }>, history: HistoryEntry[]): PendingApproval {
  return {
    decision_id: view.decision_id, round: r.round, kind: r.kind, agent_id: view.agent_id, tool: view.action.tool, operation: view.action.operation ?? null,
    reason: view.reason, matched_rule: view.matched_rule, groups: r.groups, quorum: r.quorum, approvals: r.approvals.length, deadline: r.deadline,
    args_digest: r.args_digest, snapshot_hash: r.snapshot_hash, justification: r.justification ?? null,
    ...(r.requirements ? { requirements: requirementSummaries(r)! } : {}),
    ...(r.kind === 'approval' && checklistOf(view).length > 0 ? { checklist: checklistOf(view) } : {}),
    constraints: view.constraints, history,
    args: requestArgs(events), policies: view.policies.map((p) => ({ policy_id: p.policy_id, version: p.version })),
    answers: [
      ...r.approvals.map((a) => ({ approver_id: a.approver_id, verdict: 'approve' as const, channel: a.channel, at: a.at, comment: a.comment ?? null })),
      ...r.rejections.map((a) => ({ approver_id: a.approver_id, verdict: 'reject' as const, channel: a.channel, at: a.at, comment: a.comment ?? null })),
    ].sort((a, b) => a.at.localeCompare(b.at)),
    on_timeout: r.on_timeout, escalate_to: r.escalate_to,
    ...inboxEditFields(view, r),
  };
}

/**
 * Approve with edit, as an approver's inbox shows it: whether an approval may carry edited arguments (the
 * conditions checkApprovalEdit applies before judging the edit itself: an approval round whose rules allow
 * edits), and the edited arguments the round's approvals so far approved, which every further approval must
 * approve.
 */
export function inboxEditFields(view: RunView, r: Round): Pick<PendingApproval, 'edits_allowed' | 'edited_args' | 'edited_args_digest' | 'edited_by'> {
  return {
    edits_allowed: r.kind === 'approval' && view.evaluation !== null && editsAllowed(view.evaluation),
    ...(r.edit ? { edited_args: r.edit.args, edited_args_digest: r.edit.args_digest, edited_by: r.approvals[0]?.approver_id ?? null } : {}),
  };
}

/** The arguments of a run's request, from its DecisionRequested event (null when it sent none). */
function requestArgs(events: ReadonlyArray<{ type: string; data: unknown }>): unknown {
  const first = events.find((e) => e.type === 'DecisionRequested');
  return (first?.data as { request?: { action?: { args?: unknown } } } | undefined)?.request?.action?.args ?? null;
}
