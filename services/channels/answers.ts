import { createHash } from 'node:crypto';
import type { WebClient } from '@slack/web-api';
import { CountersignError } from '../errors.ts';
import { withSystem, withTenant, type Db } from '../events/db.ts';
import { answerApproval, type MessageDeps } from '../decisions/run-messages.ts';
import { findPerson } from '../identity/people.ts';
import type { Principal } from '../identity/principals.ts';
import type { PrincipalView } from '../../schemas/identity.ts';
import { hashEmailToken, isEmailTokenShape } from './email.ts';
import { loadRoundFacts } from './facts.ts';
import { resultBlocks } from './slack.ts';
import { cleanText } from './untrusted-text.ts';

export type Verdict = 'approve' | 'reject';
export type AnswerOutcome = { counted: true; approver: string } | { counted: false; reason: string };

const principalOf = (p: PrincipalView, via: string): Principal => ({
  id: p.id, tenant_id: p.tenant_id, name: p.name, kind: p.kind, roles: p.roles, groups: p.groups, platform_admin: false, key_prefix: via,
});

async function count(messages: MessageDeps, person: PrincipalView, decisionId: string, round: number, verdict: Verdict, channel: 'slack' | 'email', comment?: string): Promise<AnswerOutcome> {
  try {
    await answerApproval(messages, principalOf(person, channel), decisionId, { verdict, round, ...(comment ? { comment } : {}) }, channel);
    return { counted: true, approver: person.name };
  } catch (err) {
    if (err instanceof CountersignError && err.status < 500) return { counted: false, reason: err.message };
    throw err;
  }
}

// ---- Slack ----

export type SlackAction = { teamId: string; userId: string; verdict: Verdict; ref: string };

/** The one kind of interaction we act on: a click on one of our two buttons. Anything else is null. */
export function parseSlackInteraction(rawBody: string): SlackAction | null {
  let payload: unknown;
  try {
    const p = new URLSearchParams(rawBody).get('payload');
    if (!p || p.length > 64 * 1024) return null;
    payload = JSON.parse(p);
  } catch {
    return null;
  }
  const o = payload as { type?: unknown; team?: { id?: unknown }; user?: { id?: unknown; team_id?: unknown }; actions?: Array<{ action_id?: unknown; value?: unknown }> };
  if (!o || o.type !== 'block_actions' || !Array.isArray(o.actions) || o.actions.length !== 1) return null;
  const a = o.actions[0]!;
  const teamId = o.team?.id ?? o.user?.team_id;
  const verdict = a.action_id === 'countersign_approve' ? 'approve' : a.action_id === 'countersign_reject' ? 'reject' : null;
  if (typeof teamId !== 'string' || typeof o.user?.id !== 'string' || !verdict || typeof a.value !== 'string' || !/^[A-Za-z0-9_-]{16,64}$/.test(a.value)) return null;
  return { teamId, userId: o.user.id, verdict, ref: a.value };
}

type SlackMessageRow = { ref: string; tenant_id: string; decision_id: string; round: number; approver_id: string; slack_user_id: string; team_id: string; channel: string | null; ts: string | null };

/**
 * Records a verified interaction once (by the digest of its raw body). Returns the message it is about and
 * whether it is the first time; a replay (or an unknown message) is acknowledged and does nothing.
 */
export async function claimSlackInteraction(db: Db, rawBody: string, action: SlackAction): Promise<{ message: SlackMessageRow; first: boolean } | null> {
  const message = (await withSystem(db, 'channels', (c) => c.query<SlackMessageRow>(
    `SELECT ref, tenant_id, decision_id, round, approver_id, slack_user_id, team_id, channel, ts FROM channel_slack_messages WHERE ref = $1`, [action.ref],
  ))).rows[0];
  if (!message) return null;
  const bodyHash = createHash('sha256').update(rawBody).digest('hex');
  const ins = await withTenant(db, message.tenant_id, (c) => c.query(
    `INSERT INTO channel_slack_interactions (body_hash, tenant_id, ref, slack_user_id) VALUES ($1, $2, $3, $4) ON CONFLICT (body_hash) DO NOTHING`,
    [bodyHash, message.tenant_id, message.ref, action.userId],
  ));
  return { message, first: ins.rowCount === 1 };
}

/** Counts a click through the API's own path, then shows on the message who decided or why it did not count. */
export async function answerSlackClick(db: Db, messages: MessageDeps, slack: WebClient | undefined, message: SlackMessageRow, action: SlackAction): Promise<AnswerOutcome> {
  let outcome: AnswerOutcome;
  const person = await findPerson(db, message.tenant_id, { slack_user_id: action.userId });
  if (action.teamId !== message.team_id) outcome = { counted: false, reason: 'the click came from another Slack workspace' };
  else if (!person) outcome = { counted: false, reason: 'this Slack user is not a member of the tenant' };
  else if (person.id !== message.approver_id) outcome = { counted: false, reason: 'this message was sent to another approver' };
  else outcome = await count(messages, person, message.decision_id, message.round, action.verdict, 'slack');

  if (slack && message.channel && message.ts) {
    const facts = await loadRoundFacts(db, message.tenant_id, message.decision_id, message.round).catch(() => null);
    const text = outcome.counted
      ? `${action.verdict === 'approve' ? 'Approved' : 'Rejected'} by ${cleanText(outcome.approver, 100)} (counted).`
      : `A ${action.verdict} click by Slack user ${cleanText(action.userId, 40)} was not counted: ${cleanText(outcome.reason, 300)}`;
    // A click that did not count leaves the buttons for the rightful approver.
    const blocks = outcome.counted ? resultBlocks(facts, message.ref, text) : [...(facts ? resultBlocks(facts, message.ref, text) : [])];
    await slack.chat.update({ channel: message.channel, ts: message.ts, text, blocks: blocks as never }).catch(() => undefined);
    // The round closed with this answer: the other approvers' messages lose their buttons too.
    if (outcome.counted && facts && facts.status !== 'open') await closeOtherMessages(db, slack, message, facts, `Round ${facts.round} is ${facts.status}: ${text}`);
  }
  return outcome;
}

async function closeOtherMessages(db: Db, slack: WebClient, message: SlackMessageRow, facts: NonNullable<Awaited<ReturnType<typeof loadRoundFacts>>>, text: string): Promise<void> {
  const others = await withTenant(db, message.tenant_id, (c) => c.query<{ ref: string; channel: string; ts: string }>(
    `SELECT ref, channel, ts FROM channel_slack_messages WHERE tenant_id = $1 AND decision_id = $2 AND round = $3 AND ref <> $4 AND ts IS NOT NULL`,
    [message.tenant_id, message.decision_id, message.round, message.ref],
  ));
  for (const o of others.rows) {
    await slack.chat.update({ channel: o.channel, ts: o.ts, text, blocks: resultBlocks(facts, o.ref, text) as never }).catch(() => undefined);
  }
}

// ---- Email ----

export type EmailTokenRow = { token_hash: string; tenant_id: string; decision_id: string; round: number; approver_id: string; email: string; expires_at: Date; used_at: Date | null };

/** The live link behind a token, or why there is none. Reading never consumes it. */
export async function readEmailToken(db: Db, token: string): Promise<{ row: EmailTokenRow } | { refused: string }> {
  if (!isEmailTokenShape(token)) return { refused: 'this link is not valid' };
  const row = (await withSystem(db, 'channels', (c) => c.query<EmailTokenRow>(
    `SELECT token_hash, tenant_id, decision_id, round, approver_id, email, expires_at, used_at FROM channel_email_tokens WHERE token_hash = $1`, [hashEmailToken(token)],
  ))).rows[0];
  if (!row) return { refused: 'this link is not valid' };
  if (row.used_at) return { refused: 'this link has already been used' };
  if (row.expires_at.getTime() <= Date.now()) return { refused: 'this link has expired' };
  return { row };
}

/** Consumes the link (once, before it expires) and counts the answer through the API's own path. */
export async function answerEmail(db: Db, messages: MessageDeps, row: EmailTokenRow, verdict: Verdict, comment: string | undefined): Promise<AnswerOutcome> {
  const consumed = await withTenant(db, row.tenant_id, (c) => c.query(
    `UPDATE channel_email_tokens SET used_at = now(), used_verdict = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()`,
    [row.token_hash, verdict],
  ));
  if (consumed.rowCount !== 1) return { counted: false, reason: 'this link has already been used or has expired' };
  const person = await findPerson(db, row.tenant_id, { email: row.email });
  if (!person || person.id !== row.approver_id) return { counted: false, reason: 'the approver this link was sent to is no longer a member with this address' };
  return count(messages, person, row.decision_id, row.round, verdict, 'email', comment);
}
