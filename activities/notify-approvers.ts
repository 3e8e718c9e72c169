import type { WebClient } from '@slack/web-api';
import { withTenant, type Db } from '../services/events/db.ts';
import { approvalEmail, newEmailToken, type Mailer } from '../services/channels/email.ts';
import { loadRoundFacts, type RoundFacts } from '../services/channels/facts.ts';
import { approvalBlocks, fallbackText, newSlackRef } from '../services/channels/slack.ts';
import type { Delivery, NotifyInput } from './types.ts';

export type ChannelDeps = {
  /** Posts approval messages; absent when Slack is not configured. */
  slack?: WebClient | undefined;
  /** Sends approval emails; absent when SMTP is not configured. */
  mailer?: Mailer | undefined;
  /** Base URL of the API, for email links. */
  publicUrl?: string | undefined;
};

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 500);

/**
 * Tells a round's approvers that an answer is wanted. Every approver of the round's groups (never the
 * requester) gets the round in their pending list (`GET /v1/approvals`, the CLI, the dashboard): that is the
 * `dashboard` delivery. Each approver with a Slack user id also gets a Slack message, and each with an email
 * address a single-use link by email; each delivery is reported, a failed one with its error (never thrown).
 */
export function makeNotifyApprovers(db: Db, channels: ChannelDeps = {}) {
  let teamId: Promise<string> | null = null;
  const slackTeam = (slack: WebClient) => (teamId ??= slack.auth.test().then((r) => {
    if (!r.team_id) throw new Error('auth.test returned no team_id');
    return r.team_id;
  }).catch((err: unknown) => { teamId = null; throw err; }));

  return async function notifyApprovers(input: NotifyInput): Promise<Delivery[]> {
    const res = await withTenant(db, input.tenantId, (c) =>
      c.query<{ id: string; email: string | null; slack_user_id: string | null }>(
        `SELECT id, email, slack_user_id FROM principals WHERE tenant_id = $1 AND 'approver' = ANY(roles) AND groups && $2::text[] AND id <> $3
           AND disabled_at IS NULL ORDER BY id`,
        [input.tenantId, input.groups, input.requestedBy],
      ),
    );
    const deliveries: Delivery[] = res.rows.map((r) => ({ channel: 'dashboard' as const, recipient: r.id }));
    const wantsChannel = res.rows.some((r) => (r.slack_user_id && channels.slack) || (r.email && channels.mailer));
    if (!wantsChannel) return deliveries;
    let facts: RoundFacts | null = null;
    try {
      facts = await loadRoundFacts(db, input.tenantId, input.decisionId, input.round);
    } catch (err) {
      facts = null;
      void err;
    }
    for (const r of res.rows) {
      if (r.slack_user_id && channels.slack) {
        const slack = channels.slack;
        deliveries.push(await deliver('slack', r.id, async () => {
          if (!facts) throw new Error('the round is not recorded yet');
          await postSlack(db, slack, await slackTeam(slack), facts, input, r.id, r.slack_user_id!);
        }));
      }
      if (r.email && channels.mailer) {
        const mailer = channels.mailer;
        deliveries.push(await deliver('email', r.id, async () => {
          if (!facts) throw new Error('the round is not recorded yet');
          await sendEmail(db, mailer, channels.publicUrl ?? '', facts, input, r.id, r.email!);
        }));
      }
    }
    return deliveries;
  };
}

async function deliver(channel: 'slack' | 'email', recipient: string, fn: () => Promise<void>): Promise<Delivery> {
  try {
    await fn();
    return { channel, recipient };
  } catch (err) {
    return { channel, recipient, error: errorText(err) };
  }
}

async function postSlack(db: Db, slack: WebClient, team: string, f: RoundFacts, input: NotifyInput, approverId: string, slackUserId: string): Promise<void> {
  // One message per approver, round and notification: a retried activity does not post twice.
  const existing = await withTenant(db, input.tenantId, (c) => c.query<{ ref: string; ts: string | null }>(
    `SELECT ref, ts FROM channel_slack_messages WHERE tenant_id = $1 AND decision_id = $2 AND round = $3 AND purpose = $4 AND approver_id = $5`,
    [input.tenantId, input.decisionId, input.round, input.purpose, approverId],
  ));
  if (existing.rows[0]?.ts) return;
  const ref = existing.rows[0]?.ref ?? newSlackRef();
  if (!existing.rows[0]) {
    await withTenant(db, input.tenantId, (c) => c.query(
      `INSERT INTO channel_slack_messages (ref, tenant_id, decision_id, round, purpose, approver_id, slack_user_id, team_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [ref, input.tenantId, input.decisionId, input.round, input.purpose, approverId, slackUserId, team],
    ));
  }
  const posted = await slack.chat.postMessage({ channel: slackUserId, text: fallbackText(f), blocks: approvalBlocks(f, ref, input.purpose) as never, unfurl_links: false, unfurl_media: false });
  await withTenant(db, input.tenantId, (c) => c.query(
    `UPDATE channel_slack_messages SET channel = $2, ts = $3 WHERE ref = $1`,
    [ref, posted.channel ?? slackUserId, posted.ts ?? null],
  ));
}

async function sendEmail(db: Db, mailer: Mailer, publicUrl: string, f: RoundFacts, input: NotifyInput, approverId: string, email: string): Promise<void> {
  const { token, hash } = newEmailToken();
  const inserted = await withTenant(db, input.tenantId, (c) => c.query(
    `INSERT INTO channel_email_tokens (token_hash, tenant_id, decision_id, round, purpose, approver_id, email, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, decision_id, round, purpose, approver_id) DO NOTHING`,
    [hash, input.tenantId, input.decisionId, input.round, input.purpose, approverId, email, f.deadline],
  ));
  // Already sent by an earlier attempt of this activity: its link is the only live one.
  if (inserted.rowCount === 0) return;
  const link = `${publicUrl.replace(/\/+$/, '')}/v1/email-approvals/${token}`;
  await mailer.send(email, approvalEmail(f, link));
}
