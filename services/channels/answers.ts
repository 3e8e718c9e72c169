import { createHash } from 'node:crypto';
import type { WebClient } from '@slack/web-api';
import { CountersignError } from '../errors.ts';
import { withSystem, withTenant, type Db } from '../events/db.ts';
import type pg from 'pg';
import { answerApproval, checkedAnswer, type MessageDeps } from '../decisions/run-messages.ts';
import { answerActivationReview } from '../lifecycle/activation-reviews.ts';
import { closeReviewMessages, reviewStateText } from '../../activities/notify-reviewers.ts';
import { isReviewPurpose, loadReviewFacts, reviewOwner } from './review-facts.ts';
import { editableArgs, editModal, EDIT_CALLBACK, sealEdit, unsealEdit } from './slack-edit.ts';
import { parseEditedArgs } from './edited-args.ts';
import { findPerson } from '../identity/people.ts';
import type { Principal } from '../identity/principals.ts';
import type { PrincipalView } from '../../schemas/identity.ts';
import { hashEmailToken, isEmailTokenShape } from './email.ts';
import { loadRoundFacts } from './facts.ts';
import { closeRoundMessages, principalNames, rerenderDigest, roundStateText } from './round-messages.ts';
import { APPROVE_ACTION, approvalBlocks, EDIT_ACTION, REJECT_ACTION, resultBlocks, reviewBlocks } from './slack.ts';
import { cleanText, slackFact } from './untrusted-text.ts';
import { boundSlackTeam } from './slack-workspaces.ts';

export type Verdict = 'approve' | 'reject';
export type AnswerOutcome = { counted: true; approver: string } | { counted: false; reason: string };

const principalOf = (p: PrincipalView, via: string): Principal => ({
  id: p.id, tenant_id: p.tenant_id, name: p.name, kind: p.kind, roles: p.roles, groups: p.groups, platform_admin: false, agent_id: null, acts_for: [], key_prefix: via,
});

/** What a channel's answer is about: a decision's round, or a four-eyes review (the message's or link's `policy_id` set). */
type Answered = { tenant_id: string; decision_id: string; round: number; purpose: string; policy_id: string | null };
export type ChannelEdit = { args: Record<string, unknown>; argsDigest?: string | null | undefined };

/**
 * Counts an answer through the API's own path: a round's through answerApproval (the run's rules, an edit
 * re-evaluated against the run's snapshot), a review's through answerActivationReview (the review's rules: a
 * second admin, never the requester nor an author). A refusal (4xx) is an outcome; anything else is thrown.
 */
async function count(messages: MessageDeps, person: PrincipalView, about: Answered, verdict: Verdict, channel: 'slack' | 'email', comment?: string, edit?: ChannelEdit): Promise<AnswerOutcome> {
  try {
    if (isReviewPurpose(about.purpose)) {
      if (edit) return { counted: false, reason: 'a policy review cannot be approved with an edit' };
      // A platform review's answer goes to the platform's policy; the worker counts it only from a platform admin.
      await answerActivationReview(messages, principalOf(person, channel), about.policy_id ?? '', { verdict, review_id: about.decision_id, ...(comment ? { comment } : {}) }, reviewOwner(about), channel);
    } else {
      await answerApproval(messages, principalOf(person, channel), about.decision_id, {
        verdict, round: about.round, ...(comment ? { comment } : {}),
        ...(edit ? { edited_args: edit.args, ...(edit.argsDigest !== undefined ? { args_digest: edit.argsDigest } : {}) } : {}),
      }, channel);
    }
    return { counted: true, approver: person.name };
  } catch (err) {
    if (err instanceof CountersignError && err.status < 500) return { counted: false, reason: err.message };
    throw err;
  }
}

// ---- the answer log ----

export type AnswerLogEntry = {
  tenantId: string | null;
  channel: 'slack' | 'email';
  decisionId?: string | null | undefined;
  round?: number | null | undefined;
  actor?: string | null | undefined;
  verdict?: string | null | undefined;
  counted: boolean;
  reason: string;
};

/**
 * Records every answer a channel saw, counted or refused, with the reason. A request that cannot be tied to
 * a tenant (a bad signature, an unknown link) is recorded without one, visible to system scopes only.
 */
export async function logAnswer(db: Db, e: AnswerLogEntry): Promise<void> {
  const insert = (c: pg.PoolClient) => c.query(
    `INSERT INTO channel_answer_log (tenant_id, channel, decision_id, round, actor, verdict, counted, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [e.tenantId, e.channel, e.decisionId ?? null, e.round ?? null, e.actor ? cleanText(e.actor, 200) : null, e.verdict ? cleanText(e.verdict, 20) : null, e.counted, cleanText(e.reason, 500)],
  );
  await (e.tenantId ? withTenant(db, e.tenantId, insert) : withSystem(db, 'channels', insert));
}

// ---- Slack ----

/**
 * What a verified Slack request asks for: a click on Approve (counted), a click on Reject (opens the modal
 * that asks for a reason: `triggerId`), the submitted reason (a reject with its `comment`), a click on Approve
 * with edit (opens the edit modal: `opensEdit` with `triggerId`), or the submitted edit (`submitted`: the text
 * typed and the modal's sealed metadata, checked by the route; `edit` once they are).
 */
export type SlackAction = {
  teamId: string; userId: string; verdict: Verdict; ref: string; comment?: string | undefined; triggerId?: string | undefined;
  opensEdit?: true; submitted?: { text: string; sealed: string }; edit?: ChannelEdit;
};

export const REJECT_REASON_CALLBACK = 'countersign_reject_reason';
const REF = /^[A-Za-z0-9_-]{16,64}$/;

/** The kinds of interaction we act on: a click on one of our buttons, or one of our two modals. Anything else is null. */
export function parseSlackInteraction(rawBody: string): SlackAction | null {
  let payload: unknown;
  try {
    const p = new URLSearchParams(rawBody).get('payload');
    if (!p || p.length > 64 * 1024) return null;
    payload = JSON.parse(p);
  } catch {
    return null;
  }
  const o = payload as {
    type?: unknown; team?: { id?: unknown }; user?: { id?: unknown; team_id?: unknown }; trigger_id?: unknown;
    actions?: Array<{ action_id?: unknown; value?: unknown }>;
    view?: { callback_id?: unknown; private_metadata?: unknown; state?: { values?: { reason?: { reason?: { value?: unknown } }; args?: { args?: { value?: unknown } } } } };
  };
  if (!o || typeof o !== 'object') return null;
  const teamId = o.team?.id ?? o.user?.team_id;
  if (typeof teamId !== 'string' || typeof o.user?.id !== 'string') return null;
  if (o.type === 'view_submission') {
    const v = o.view;
    if (v?.callback_id === EDIT_CALLBACK) {
      const text = v.state?.values?.args?.args?.value;
      if (typeof v.private_metadata !== 'string' || typeof text !== 'string') return null;
      // The ref is taken from the metadata here and trusted only once the route has checked its MAC.
      const ref = v.private_metadata.split('.')[0] ?? '';
      if (!REF.test(ref)) return null;
      return { teamId, userId: o.user.id, verdict: 'approve', ref, submitted: { text, sealed: v.private_metadata } };
    }
    const reason = v?.state?.values?.reason?.reason?.value;
    if (v?.callback_id !== REJECT_REASON_CALLBACK || typeof v.private_metadata !== 'string' || !REF.test(v.private_metadata) || typeof reason !== 'string' || !reason.trim()) return null;
    return { teamId, userId: o.user.id, verdict: 'reject', ref: v.private_metadata, comment: reason.trim().slice(0, 2000) };
  }
  if (o.type !== 'block_actions' || !Array.isArray(o.actions) || o.actions.length !== 1) return null;
  const a = o.actions[0]!;
  const verdict = a.action_id === APPROVE_ACTION || a.action_id === EDIT_ACTION ? 'approve' : a.action_id === REJECT_ACTION ? 'reject' : null;
  if (!verdict || typeof a.value !== 'string' || !REF.test(a.value)) return null;
  const trigger = typeof o.trigger_id === 'string' && o.trigger_id.length <= 255 ? o.trigger_id : null;
  if (a.action_id === EDIT_ACTION) return trigger ? { teamId, userId: o.user.id, verdict, ref: a.value, triggerId: trigger, opensEdit: true } : null;
  if (verdict === 'reject') return trigger ? { teamId, userId: o.user.id, verdict, ref: a.value, triggerId: trigger } : null;
  return { teamId, userId: o.user.id, verdict, ref: a.value };
}

/**
 * A submitted edit checked: the metadata sealed by us for this very message, Slack user and round, and the text
 * a JSON object within bounds. The action then carries the edit (and the arguments' digest the modal was opened
 * for); otherwise the field error to show in the modal.
 */
export function checkEditSubmission(secret: Buffer, action: SlackAction): { ok: true; action: SlackAction; round: number } | { ok: false; reason: string; forged: boolean } {
  if (!action.submitted) return { ok: false, reason: 'not an edit', forged: true };
  const seal = unsealEdit(secret, action.submitted.sealed);
  if (!seal || seal.ref !== action.ref || seal.userId !== action.userId) return { ok: false, reason: 'this form was not opened by Countersign for you: open it again from the message', forged: true };
  const parsed = parseEditedArgs(action.submitted.text);
  if (!parsed.ok) return { ok: false, reason: parsed.reason, forged: false };
  return { ok: true, round: seal.round, action: { ...action, edit: { args: parsed.args, argsDigest: seal.argsDigest } } };
}

export type SlackMessageRow = { ref: string; tenant_id: string; decision_id: string; round: number; purpose: string; approver_id: string; slack_user_id: string; team_id: string; channel: string | null; ts: string | null; policy_id: string | null };
const MESSAGE_COLUMNS = 'ref, tenant_id, decision_id, round, purpose, approver_id, slack_user_id, team_id, channel, ts, policy_id';

/**
 * The Slack inbox. A verified click is stored (by the digest of its raw body) before Slack is acknowledged,
 * leased to this process for the work that follows; an API that dies after the acknowledgement leaves it
 * unprocessed for `processSlackInbox` at the next start. A replay of a stored body is acknowledged and does
 * nothing. Returns the message the click is about, the inbox key and whether this is the first copy.
 */
export async function claimSlackInteraction(db: Db, rawBody: string, action: SlackAction): Promise<{ message: SlackMessageRow; bodyHash: string; first: boolean } | null> {
  const message = (await withSystem(db, 'channels', (c) => c.query<SlackMessageRow>(
    `SELECT ${MESSAGE_COLUMNS} FROM channel_slack_messages WHERE ref = $1`, [action.ref],
  ))).rows[0];
  if (!message) return null;
  const bodyHash = createHash('sha256').update(rawBody).digest('hex');
  const ins = await withTenant(db, message.tenant_id, (c) => c.query(
    `INSERT INTO channel_slack_interactions (body_hash, tenant_id, ref, slack_user_id, team_id, verdict, comment, edited_args, attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
     ON CONFLICT (body_hash) DO NOTHING`,
    [bodyHash, message.tenant_id, message.ref, action.userId, action.teamId, action.verdict, action.comment ?? null, action.edit ? JSON.stringify(action.edit.args) : null],
  ));
  return { message, bodyHash, first: ins.rowCount === 1 };
}

/** The message a click is about (by the ref its button carries), before the tenant is known. */
export async function findSlackMessage(db: Db, ref: string): Promise<SlackMessageRow | null> {
  return (await withSystem(db, 'channels', (c) => c.query<SlackMessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM channel_slack_messages WHERE ref = $1`, [ref]))).rows[0] ?? null;
}

/**
 * A click on Reject or on Approve with edit: when it could count, Slack is asked to open the modal that asks
 * for the reason or the edited arguments (the answer is its submission); when it could not, the refusal is
 * recorded and shown like any other. `secret` seals the edit modal's metadata.
 */
export async function openAnswerModal(db: Db, slack: WebClient | undefined, secret: Buffer, message: SlackMessageRow, action: SlackAction): Promise<AnswerOutcome | null> {
  const person = await findPerson(db, message.tenant_id, { slack_user_id: action.userId });
  let refusal = await refusalOf(db, message, action, person);
  const facts = !refusal && action.opensEdit ? await loadRoundFacts(db, message.tenant_id, message.decision_id, message.round).catch(() => null) : null;
  const prefill = facts ? editableArgs(facts) : null;
  if (!refusal && action.opensEdit) {
    if (isReviewPurpose(message.purpose)) refusal = 'a policy review cannot be approved with an edit';
    else if (!facts || facts.status !== 'open') refusal = `round ${message.round} is not open`;
    else if (!facts.edits_allowed) refusal = `rule ${facts.matched_rule ?? '(none)'} does not allow approving changed arguments`;
    else if (prefill === null) refusal = 'the arguments are too long to edit in Slack: approve with edit from the console or the API';
  }
  if (refusal || !person) {
    const outcome: AnswerOutcome = { counted: false, reason: refusal ?? 'this Slack user is not a member of the tenant' };
    await logAnswer(db, { tenantId: message.tenant_id, channel: 'slack', decisionId: message.decision_id, round: message.round, actor: `slack:${action.teamId}/${action.userId}`, verdict: action.opensEdit ? 'approve' : 'reject', counted: false, reason: outcome.reason });
    await showOutcome(db, slack, message, action, outcome);
    return outcome;
  }
  if (!slack || !action.triggerId) return null;
  if (action.opensEdit && facts && prefill !== null) {
    const sealed = sealEdit(secret, { ref: message.ref, userId: action.userId, round: message.round, argsDigest: facts.args_digest });
    await slack.views.open({ trigger_id: action.triggerId, view: editModal(facts, sealed, prefill) as never });
    return null;
  }
  const what = isReviewPurpose(message.purpose) ? `The policy change under review (${slackFact(message.policy_id ?? '', 130)})` : `Decision \`${message.decision_id}\`, round ${message.round}`;
  await slack.views.open({
    trigger_id: action.triggerId,
    view: {
      type: 'modal',
      callback_id: REJECT_REASON_CALLBACK,
      private_metadata: message.ref,
      title: { type: 'plain_text', text: 'Reject' },
      submit: { type: 'plain_text', text: 'Reject' },
      close: { type: 'plain_text', text: 'Cancel' },
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', verbatim: true, text: `${what}: why do you reject it?` } },
        { type: 'input', block_id: 'reason', label: { type: 'plain_text', text: 'Reason' }, element: { type: 'plain_text_input', action_id: 'reason', multiline: true, max_length: 2000 } },
      ],
    } as never,
  });
  return null;
}

/** Marks a stored click done, with what came of it (a replayed copy never reaches here). */
async function markProcessed(db: Db, tenantId: string, bodyHash: string, outcome: AnswerOutcome): Promise<void> {
  await withTenant(db, tenantId, (c) => c.query(
    `UPDATE channel_slack_interactions SET processed_at = now(), outcome = $3 WHERE tenant_id = $1 AND body_hash = $2 AND processed_at IS NULL`,
    [tenantId, bodyHash, outcome.counted ? `counted: ${outcome.approver}` : `refused: ${outcome.reason}`.slice(0, 500)],
  ));
}

/** Why a click may not count, before the workflow is asked: workspace, person, addressee. */
async function refusalOf(db: Db, message: SlackMessageRow, action: SlackAction, person: PrincipalView | null): Promise<string | null> {
  if (action.teamId !== message.team_id) return 'the click came from another Slack workspace';
  const bound = await boundSlackTeam(db, message.tenant_id);
  if (bound && bound !== action.teamId) return "the click came from a Slack workspace other than the tenant's";
  if (!person) return 'this Slack user is not a member of the tenant';
  if (person.id !== message.approver_id) return 'this message was sent to another approver';
  return null;
}

/**
 * Counts a stored click through the API's own path, records it, then shows on the message who decided or
 * why it did not count; when the answer closed the round, every other message of the round shows it too.
 * Idempotent: processing the same stored click again (after a crash) finds the approver's answer already in
 * the round and reports it as counted, never a second answer.
 */
export async function answerSlackClick(db: Db, messages: MessageDeps, slack: WebClient | undefined, message: SlackMessageRow, action: SlackAction, bodyHash: string): Promise<AnswerOutcome> {
  // The lease is renewed while the work lasts (an answer may wait up to a minute for a worker), so a sweep
  // of another API process never takes a click this one is still working on.
  const renew = setInterval(() => {
    void withTenant(db, message.tenant_id, (c) => c.query(
      `UPDATE channel_slack_interactions SET attempt_at = now() WHERE tenant_id = $1 AND body_hash = $2 AND processed_at IS NULL`, [message.tenant_id, bodyHash],
    )).catch(() => undefined);
  }, (SLACK_INBOX_LEASE_SECONDS * 1000) / 3);
  try {
    return await answerStoredClick(db, messages, slack, message, action, bodyHash);
  } finally {
    clearInterval(renew);
  }
}

async function answerStoredClick(db: Db, messages: MessageDeps, slack: WebClient | undefined, message: SlackMessageRow, action: SlackAction, bodyHash: string): Promise<AnswerOutcome> {
  const person = await findPerson(db, message.tenant_id, { slack_user_id: action.userId });
  const refusal = await refusalOf(db, message, action, person);
  let outcome: AnswerOutcome;
  if (refusal || !person) outcome = { counted: false, reason: refusal ?? 'this Slack user is not a member of the tenant' };
  else if ((await answeredBefore(db, message, person.id, action.verdict)) === true) outcome = { counted: true, approver: person.name };
  else outcome = await count(messages, person, message, action.verdict, 'slack', action.comment, action.edit);
  await logAnswer(db, { tenantId: message.tenant_id, channel: 'slack', decisionId: message.decision_id, round: message.round, actor: `slack:${action.teamId}/${action.userId}`, verdict: action.edit ? 'approve_edit' : action.verdict, counted: outcome.counted, reason: outcome.counted ? `counted (${person?.id})` : outcome.reason });
  await markProcessed(db, message.tenant_id, bodyHash, outcome);

  await showOutcome(db, slack, message, action, outcome);
  return outcome;
}

/** Whether this approver's answer is already in the round or review (a stored click processed again after a crash). */
async function answeredBefore(db: Db, message: SlackMessageRow, approverId: string, verdict: Verdict): Promise<boolean> {
  if (isReviewPurpose(message.purpose)) {
    const review = await loadReviewFacts(db, reviewOwner(message), message.policy_id ?? '', message.decision_id).catch(() => null);
    return review?.answers.some((a) => a.by === approverId && a.verdict === verdict) ?? false;
  }
  const before = await loadRoundFacts(db, message.tenant_id, message.decision_id, message.round).catch(() => null);
  return before?.answers.some((a) => a.approver_id === approverId && a.channel === 'slack' && a.verdict === verdict) ?? false;
}

/** Shows on the message who decided, or why a click did not count; a closed round closes its other messages too. */
async function showOutcome(db: Db, slack: WebClient | undefined, message: SlackMessageRow, action: SlackAction, outcome: AnswerOutcome): Promise<void> {
  if (!slack || !message.channel || !message.ts) return;
  const verdict = action.edit ? 'approve-with-edit' : action.verdict;
  const text = outcome.counted
    ? `${action.edit ? 'Approved with edited arguments' : action.verdict === 'approve' ? 'Approved' : 'Rejected'} by ${cleanText(outcome.approver, 100)} (counted).`
    : `A ${verdict} click by Slack user ${cleanText(action.userId, 40)} was not counted: ${cleanText(outcome.reason, 300)}`;
  if (isReviewPurpose(message.purpose)) {
    const review = await loadReviewFacts(db, reviewOwner(message), message.policy_id ?? '', message.decision_id).catch(() => null);
    if (!review) return;
    if (review.status !== 'open') {
      // The review closed: every message of it shows how (the review workflow does the same once it ends).
      await closeReviewMessages(db, slack, review).catch(() => undefined);
      return;
    }
    const blocks = [...reviewBlocks(review, message.ref, null), { type: 'context', elements: [{ type: 'mrkdwn', text: text.replace(/[<>&]/g, ''), verbatim: true }] }];
    await slack.chat.update({ channel: message.channel, ts: message.ts, text: outcome.counted ? text : `${text} ${reviewStateText(review, new Map())}`, blocks: blocks as never }).catch(() => undefined);
    return;
  }
  const facts = await loadRoundFacts(db, message.tenant_id, message.decision_id, message.round).catch(() => null);
  if (message.purpose === 'digest') {
    await rerenderDigest(db, slack, message.tenant_id, message.channel, message.ts).catch(() => undefined);
  } else if (outcome.counted) {
    const names = facts ? await principalNames(db, message.tenant_id, facts.answers.map((a) => a.approver_id)) : new Map<string, string>();
    const state = facts && facts.status !== 'open' ? ` ${roundStateText(facts, names)}` : '';
    await slack.chat.update({ channel: message.channel, ts: message.ts, text: `${text}${state}`, blocks: resultBlocks(facts, message.ref, `${text}${state}`) as never }).catch(() => undefined);
  } else if (facts) {
    // A click that did not count says why; the rightful approver keeps the buttons while the round is open.
    const blocks = facts.status === 'open'
      ? [...approvalBlocks(facts, message.ref, message.purpose === 'escalation' || message.purpose === 'reminder' ? message.purpose : 'request'), { type: 'context', elements: [{ type: 'mrkdwn', text: text.replace(/[<>&]/g, ''), verbatim: true }] }]
      : resultBlocks(facts, message.ref, text);
    await slack.chat.update({ channel: message.channel, ts: message.ts, text, blocks: blocks as never }).catch(() => undefined);
  }
  // The round closed with this answer: the other approvers' messages lose their buttons too.
  if (outcome.counted && facts && facts.status !== 'open') await closeRoundMessages(db, slack, message.tenant_id, message.decision_id, message.round).catch(() => undefined);
}

/** How long a click stays leased to the process that stored it before another may take it over. */
export const SLACK_INBOX_LEASE_SECONDS = 10;

/**
 * Works through stored clicks nobody finished (an API that died after acknowledging them), oldest first.
 * Each is leased before it is worked on, so concurrent API processes never take the same one.
 */
export async function processSlackInbox(db: Db, messages: MessageDeps, slack: WebClient | undefined, limit = 50): Promise<number> {
  const due = (await withSystem(db, 'channels', (c) => c.query<{ body_hash: string; tenant_id: string; slack_user_id: string; team_id: string | null; verdict: Verdict | null; comment: string | null; edited_args: Record<string, unknown> | null } & { message: SlackMessageRow }>(
    `UPDATE channel_slack_interactions i SET attempt_at = now()
      WHERE body_hash IN (SELECT body_hash FROM channel_slack_interactions WHERE processed_at IS NULL
                            AND (attempt_at IS NULL OR attempt_at < now() - make_interval(secs => $1)) ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)
      RETURNING body_hash, tenant_id, slack_user_id, team_id, verdict, comment, edited_args,
        (SELECT row_to_json(m) FROM (SELECT ${MESSAGE_COLUMNS} FROM channel_slack_messages WHERE ref = i.ref) m) AS message`,
    [SLACK_INBOX_LEASE_SECONDS, limit],
  ))).rows;
  let done = 0;
  const failed: string[] = [];
  for (const row of due) {
    if (!row.verdict || !row.team_id) {
      await markProcessed(db, row.tenant_id, row.body_hash, { counted: false, reason: 'stored without a verdict' });
      continue;
    }
    try {
      await answerSlackClick(db, messages, slack, row.message, {
        teamId: row.team_id, userId: row.slack_user_id, verdict: row.verdict, ref: row.message.ref, comment: row.comment ?? undefined,
        // A stored edit was checked (its seal and JSON) before it was stored; its round is the message's.
        ...(row.edited_args ? { edit: { args: row.edited_args } } : {}),
      }, row.body_hash);
      done++;
    } catch (err) {
      // Left unprocessed (Temporal or Postgres unavailable): its lease runs out and a later sweep tries again.
      failed.push(err instanceof Error ? err.message : String(err));
    }
  }
  if (failed.length) throw new Error(`${failed.length} stored Slack click(s) wait for a later sweep: ${failed[0]}`);
  return done;
}

// ---- Email ----

export type EmailTokenRow = { token_hash: string; tenant_id: string; decision_id: string; round: number; purpose: string; policy_id: string | null; approver_id: string; email: string; expires_at: Date; used_at: Date | null };

/** The live link behind a token, or why there is none. Reading never consumes it. */
export async function readEmailToken(db: Db, token: string): Promise<{ row: EmailTokenRow } | { refused: string; row?: EmailTokenRow }> {
  if (!isEmailTokenShape(token)) return { refused: 'this link is not valid' };
  const row = (await withSystem(db, 'channels', (c) => c.query<EmailTokenRow>(
    `SELECT token_hash, tenant_id, decision_id, round, purpose, policy_id, approver_id, email, expires_at, used_at FROM channel_email_tokens WHERE token_hash = $1`, [hashEmailToken(token)],
  ))).rows[0];
  if (!row) return { refused: 'this link is not valid' };
  if (row.used_at) return { refused: 'this link has already been used', row };
  if (row.expires_at.getTime() <= Date.now()) return { refused: 'this link has expired', row };
  return { row };
}

/**
 * Spends a link: its one use is taken whatever becomes of the answer (single-use means single-use). False
 * when it was already spent or has expired.
 */
export async function spendEmailLink(db: Db, row: EmailTokenRow, verdict: string | null): Promise<boolean> {
  const spent = await withTenant(db, row.tenant_id, (c) => c.query(
    `UPDATE channel_email_tokens SET used_at = now(), used_verdict = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()`,
    [row.token_hash, verdict === 'approve' || verdict === 'reject' ? verdict : null],
  ));
  return spent.rowCount === 1;
}

/** Gives a spent link back: only when counting failed for a reason on our side (503), never after a refusal. */
async function unspendEmailLink(db: Db, row: EmailTokenRow): Promise<void> {
  await withTenant(db, row.tenant_id, (c) => c.query(`UPDATE channel_email_tokens SET used_at = NULL, used_verdict = NULL WHERE token_hash = $1`, [row.token_hash]));
}

/** The member a link was sent to, as the tenant has them now; null when they are gone or changed address. */
export async function emailAddressee(db: Db, row: EmailTokenRow): Promise<PrincipalView | null> {
  const person = await findPerson(db, row.tenant_id, { email: row.email });
  return person && person.id === row.approver_id ? person : null;
}

/** Counts the answer of a link already spent by `spendEmailLink`, through the API's own path (with the approver's edit, if any). */
export async function answerEmail(db: Db, messages: MessageDeps, row: EmailTokenRow, verdict: Verdict, comment: string | undefined, edit?: ChannelEdit): Promise<AnswerOutcome> {
  const person = await emailAddressee(db, row);
  if (!person) return { counted: false, reason: 'the approver this link was sent to is no longer a member with this address' };
  try {
    return await count(messages, person, row, verdict, 'email', comment, edit);
  } catch (err) {
    await unspendEmailLink(db, row);
    throw err;
  }
}

/**
 * Whether an emailed edit would be refused, asked before its link is spent so the approver can correct it on the
 * same page: the reason, or null. The same checks the answer then passes (and passes again in the workflow).
 */
export async function emailEditRefusal(db: Db, messages: MessageDeps, row: EmailTokenRow, edit: ChannelEdit): Promise<string | null> {
  if (isReviewPurpose(row.purpose)) return 'a policy review cannot be approved with an edit';
  const person = await emailAddressee(db, row);
  if (!person) return 'the approver this link was sent to is no longer a member with this address';
  try {
    await checkedAnswer(messages, principalOf(person, 'email'), row.decision_id, {
      verdict: 'approve', round: row.round, edited_args: edit.args, ...(edit.argsDigest !== undefined ? { args_digest: edit.argsDigest } : {}),
    }, 'email');
    return null;
  } catch (err) {
    if (err instanceof CountersignError && err.status < 500) return err.message;
    throw err;
  }
}
