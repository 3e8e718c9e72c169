import type { WebClient } from '@slack/web-api';
import { withTenant, type Db } from '../services/events/db.ts';
import { approvalEmail, type Mailer } from '../services/channels/email.ts';
import { mailLink } from '../services/channels/email-links.ts';
import { loadRoundFacts, type RoundFacts } from '../services/channels/facts.ts';
import { DEFAULT_CAP, releaseSlot, reserveOrQueue, type NotificationCap } from '../services/channels/notification-cap.ts';
import { approvalBlocks, fallbackText, newSlackRef } from '../services/channels/slack.ts';
import { boundSlackTeam } from '../services/channels/slack-workspaces.ts';
import type { Delivery, NotifyInput } from './types.ts';
import { awayApprovers } from '../services/identity/delegations.ts';

export type ChannelDeps = {
  /** Posts approval messages; absent when Slack is not configured. */
  slack?: WebClient | undefined;
  /** Sends approval emails; absent when SMTP is not configured. */
  mailer?: Mailer | undefined;
  /** Base URL of the API, for email links. */
  publicUrl?: string | undefined;
  /** Per-approver, per-channel cap; what goes over it waits for the approver's digest. */
  cap?: NotificationCap | undefined;
};

export const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 500);

/** The bot's workspace (auth.test), asked once per process and kept. */
export function slackTeamOf(): (slack: WebClient) => Promise<string> {
  let teamId: Promise<string> | null = null;
  return (slack) => (teamId ??= slack.auth.test().then((r) => {
    if (!r.team_id) throw new Error('auth.test returned no team_id');
    return r.team_id;
  }).catch((err: unknown) => { teamId = null; throw err; }));
}

type Recipient = { id: string; email: string | null; slack_user_id: string | null };

/**
 * Tells a round's approvers that an answer is wanted. Every approver of the round's groups (never the
 * requester) gets the round in their pending list (`GET /v1/approvals`, the CLI, the dashboard): that is the
 * `dashboard` delivery. Each approver with a Slack user id also gets a Slack message, and each with an email
 * address a single-use link by email; each delivery is reported, a failed one with its error (never thrown).
 * A reminder goes only to the approvers who have not answered yet, and only on Slack and email. Over the
 * per-approver cap, a notification is `queued` for the approver's digest instead (services/channels/digest.ts).
 */
export function makeNotifyApprovers(db: Db, channels: ChannelDeps = {}) {
  const slackTeam = slackTeamOf();
  const cap = channels.cap ?? DEFAULT_CAP;

  return async function notifyApprovers(input: NotifyInput): Promise<Delivery[]> {
    const res = await withTenant(db, input.tenantId, (c) =>
      c.query<Recipient>(
        `SELECT id, email, slack_user_id FROM principals WHERE tenant_id = $1 AND 'approver' = ANY(roles) AND groups && $2::text[] AND id <> $3
           AND disabled_at IS NULL ORDER BY id`,
        [input.tenantId, input.groups, input.requestedBy],
      ),
    );
    res.rows = await withoutAway(db, input, res.rows);
    const reminder = input.purpose === 'reminder';
    let facts: RoundFacts | null = null;
    const wantsChannel = res.rows.some((r) => (r.slack_user_id && channels.slack) || (r.email && channels.mailer));
    if (wantsChannel || reminder || (input.purpose === 'escalation' && channels.mailer)) {
      facts = await loadRoundFacts(db, input.tenantId, input.decisionId, input.round).catch(() => null);
    }
    // An escalation moves the round's deadline: the links already out stay usable until the new one.
    if (input.purpose === 'escalation' && facts) await extendLinks(db, facts);
    // A reminder for a round that has closed meanwhile, or to someone who already answered, is not sent.
    if (reminder && (!facts || facts.status !== 'open')) return [];
    const recipients = reminder ? res.rows.filter((r) => !facts!.answers.some((a) => a.approver_id === r.id)) : res.rows;
    const deliveries: Delivery[] = reminder ? [] : recipients.map((r) => ({ channel: 'dashboard' as const, recipient: r.id }));
    if (!wantsChannel) return deliveries;

    for (const r of recipients) {
      if (r.slack_user_id && channels.slack) {
        const slack = channels.slack;
        deliveries.push(await deliver('slack', r.id, async () => {
          if (!facts) throw new Error('the round is not recorded yet');
          return postSlack(db, slack, await slackTeam(slack), cap, facts, input, r.id, r.slack_user_id!);
        }));
      }
      if (r.email && channels.mailer) {
        const mailer = channels.mailer;
        deliveries.push(await deliver('email', r.id, async () => {
          if (!facts) throw new Error('the round is not recorded yet');
          return sendEmail(db, mailer, channels.publicUrl ?? '', cap, facts, input, r.id, r.email!);
        }));
      }
    }
    return deliveries;
  };
}

/**
 * Approvers away under a delegation in force are not notified: their delegate (a member of the same group, so
 * among the recipients already) is, and answers for them. Someone whose delegate is not among the recipients
 * is still notified, so a round never loses its last reachable approver to a delegation.
 */
async function withoutAway<R extends { id: string }>(db: Db, input: NotifyInput, rows: R[]): Promise<R[]> {
  if (rows.length < 2) return rows;
  const away = await withTenant(db, input.tenantId, (c) => awayApprovers(c, input.tenantId, input.groups, new Date()));
  if (away.size === 0) return rows;
  const ids = new Set(rows.map((r) => r.id));
  return rows.filter((r) => { const to = away.get(r.id); return to === undefined || !ids.has(to); });
}

async function extendLinks(db: Db, f: RoundFacts): Promise<void> {
  await withTenant(db, f.tenant_id, (c) => c.query(
    `UPDATE channel_email_tokens SET expires_at = $4 WHERE tenant_id = $1 AND decision_id = $2 AND round = $3 AND used_at IS NULL AND expires_at < $4`,
    [f.tenant_id, f.decision_id, f.round, f.final_deadline],
  ));
}

/** Links and messages are one per approver, round, purpose and, for reminders, escalation level. */
const levelOf = (input: NotifyInput, f: RoundFacts) => (input.purpose === 'reminder' ? (input.level ?? f.level) : 0);

async function deliver(channel: 'slack' | 'email', recipient: string, fn: () => Promise<'sent' | 'queued'>): Promise<Delivery> {
  try {
    return (await fn()) === 'queued' ? { channel, recipient, queued: true } : { channel, recipient };
  } catch (err) {
    return { channel, recipient, error: errorText(err) };
  }
}

/** Sends within a cap slot: a failed send gives the slot back. */
async function inSlot(db: Db, cap: NotificationCap, n: Parameters<typeof reserveOrQueue>[2], send: () => Promise<void>): Promise<'sent' | 'queued'> {
  const slot = await reserveOrQueue(db, cap, n);
  if (slot.kind === 'queued') return 'queued';
  try {
    await send();
  } catch (err) {
    await releaseSlot(db, n.tenantId, slot.id).catch(() => undefined);
    throw err;
  }
  return 'sent';
}

async function postSlack(db: Db, slack: WebClient, team: string, cap: NotificationCap, f: RoundFacts, input: NotifyInput, approverId: string, slackUserId: string): Promise<'sent' | 'queued'> {
  // One message per approver, round and notification: a retried activity does not post twice.
  const existing = await withTenant(db, input.tenantId, (c) => c.query<{ ref: string; ts: string | null }>(
    `SELECT ref, ts FROM channel_slack_messages WHERE tenant_id = $1 AND decision_id = $2 AND round = $3 AND purpose = $4 AND approver_id = $5 AND level = $6`,
    [input.tenantId, input.decisionId, input.round, input.purpose, approverId, levelOf(input, f)],
  ));
  if (existing.rows[0]?.ts) return 'sent';
  const bound = await boundSlackTeam(db, input.tenantId);
  if (bound && bound !== team) throw new Error(`the Slack bot is installed in workspace ${team}, but this tenant is bound to ${bound}`);
  return inSlot(db, cap, { tenantId: input.tenantId, approverId, channel: 'slack', decisionId: input.decisionId, round: input.round, purpose: input.purpose }, async () => {
    const ref = existing.rows[0]?.ref ?? newSlackRef();
    if (!existing.rows[0]) {
      await withTenant(db, input.tenantId, (c) => c.query(
        `INSERT INTO channel_slack_messages (ref, tenant_id, decision_id, round, purpose, approver_id, slack_user_id, team_id, level) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [ref, input.tenantId, input.decisionId, input.round, input.purpose, approverId, slackUserId, team, levelOf(input, f)],
      ));
    }
    const posted = await slack.chat.postMessage({ channel: slackUserId, text: fallbackText(f), blocks: approvalBlocks(f, ref, input.purpose) as never, unfurl_links: false, unfurl_media: false });
    await withTenant(db, input.tenantId, (c) => c.query(
      `UPDATE channel_slack_messages SET channel = $2, ts = $3 WHERE ref = $1`,
      [ref, posted.channel ?? slackUserId, posted.ts ?? null],
    ));
  });
}

async function sendEmail(db: Db, mailer: Mailer, publicUrl: string, cap: NotificationCap, f: RoundFacts, input: NotifyInput, approverId: string, email: string): Promise<'sent' | 'queued'> {
  const existing = (await withTenant(db, input.tenantId, (c) => c.query<{ token_hash: string; sent_at: Date | null }>(
    `SELECT token_hash, sent_at FROM channel_email_tokens WHERE tenant_id = $1 AND decision_id = $2 AND round = $3 AND purpose = $4 AND approver_id = $5 AND level = $6`,
    [input.tenantId, input.decisionId, input.round, input.purpose, approverId, levelOf(input, f)],
  ))).rows[0];
  // Already mailed by an earlier attempt of this activity: its link is the only live one.
  if (existing?.sent_at) return 'sent';
  return inSlot(db, cap, { tenantId: input.tenantId, approverId, channel: 'email', decisionId: input.decisionId, round: input.round, purpose: input.purpose }, async () => {
    await mailLink(db, mailer, publicUrl, { tenantId: input.tenantId, decisionId: input.decisionId, round: input.round, purpose: input.purpose, level: levelOf(input, f), approverId, email, expiresAt: f.final_deadline }, (link) => approvalEmail(f, link, input.purpose));
  });
}

