import type { WebClient } from '@slack/web-api';
import { withTenant, type Db } from '../services/events/db.ts';
import { isPlatformScope } from '../services/events/stream-ids.ts';
import { reviewEmail } from '../services/channels/email.ts';
import { mailLink } from '../services/channels/email-links.ts';
import { loadReviewFacts, type ReviewFacts } from '../services/channels/review-facts.ts';
import { principalNames } from '../services/channels/round-messages.ts';
import { newSlackRef, reviewBlocks, reviewFallbackText } from '../services/channels/slack.ts';
import { boundSlackTeam } from '../services/channels/slack-workspaces.ts';
import { REVIEWER_ROLE } from '../services/lifecycle/activation-review.ts';
import { errorText, slackTeamOf, type ChannelDeps } from './notify-approvers.ts';
import type { Delivery, ReviewNoticeInput, RoundClosedResult } from './types.ts';

/** A review's messages and links are keyed like a round's: the review id, round 1, purpose `review`. */
const REVIEW_ROUND = 1;
const PURPOSE = 'review';

/**
 * Tells the admins who may answer a four-eyes review (every admin of the tenant but the requester and the
 * change's authors: the same people `checkReviewAnswer` lets answer) that a second pair of eyes is wanted: a
 * Slack message with Approve and Reject, and an email with a single-use link to a confirmation page. The answers
 * go through the API's own review path (services/lifecycle/activation-reviews.ts). Each delivery is reported,
 * a failed one with its error; nothing here ever throws for a channel's fault, and nothing here decides.
 * Platform policies' reviews are answered by platform admins in the console or the API only.
 */
export function makeNotifyReviewers(db: Db, channels: ChannelDeps = {}) {
  const slackTeam = slackTeamOf();
  return async function notifyReviewers(input: ReviewNoticeInput): Promise<Delivery[]> {
    if (isPlatformScope(input.tenantId)) return [];
    const facts = await loadReviewFacts(db, input.tenantId, input.policyId, input.reviewId);
    if (!facts || facts.status !== 'open') return [];
    const excluded = [facts.requested_by, ...facts.authors];
    const rows = (await withTenant(db, input.tenantId, (c) => c.query<{ id: string; email: string | null; slack_user_id: string | null }>(
      `SELECT id, email, slack_user_id FROM principals WHERE tenant_id = $1 AND $2 = ANY(roles) AND NOT (id = ANY($3::text[])) AND disabled_at IS NULL ORDER BY id`,
      [input.tenantId, REVIEWER_ROLE, excluded],
    ))).rows;
    const deliveries: Delivery[] = rows.map((r) => ({ channel: 'dashboard' as const, recipient: r.id }));
    for (const r of rows) {
      if (r.slack_user_id && channels.slack) {
        const slack = channels.slack;
        deliveries.push(await deliver('slack', r.id, async () => postReview(db, slack, await slackTeam(slack), facts, r.id, r.slack_user_id!)));
      }
      if (r.email && channels.mailer) {
        const mailer = channels.mailer;
        deliveries.push(await deliver('email', r.id, () => mailLink(db, mailer, channels.publicUrl ?? '', {
          tenantId: facts.tenant_id, decisionId: facts.review_id, round: REVIEW_ROUND, purpose: PURPOSE, approverId: r.id, email: r.email!, expiresAt: facts.deadline, policyId: facts.policy_id,
        }, (link) => reviewEmail(facts, link))));
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

async function postReview(db: Db, slack: WebClient, team: string, f: ReviewFacts, approverId: string, slackUserId: string): Promise<void> {
  // One message per reviewer and review: a retried activity does not post twice.
  const existing = (await withTenant(db, f.tenant_id, (c) => c.query<{ ref: string; ts: string | null }>(
    `SELECT ref, ts FROM channel_slack_messages WHERE tenant_id = $1 AND decision_id = $2 AND round = $3 AND purpose = $4 AND approver_id = $5 AND level = 0`,
    [f.tenant_id, f.review_id, REVIEW_ROUND, PURPOSE, approverId],
  ))).rows[0];
  if (existing?.ts) return;
  const bound = await boundSlackTeam(db, f.tenant_id);
  if (bound && bound !== team) throw new Error(`the Slack bot is installed in workspace ${team}, but this tenant is bound to ${bound}`);
  const ref = existing?.ref ?? newSlackRef();
  if (!existing) {
    await withTenant(db, f.tenant_id, (c) => c.query(
      `INSERT INTO channel_slack_messages (ref, tenant_id, decision_id, round, purpose, approver_id, slack_user_id, team_id, level, policy_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)`,
      [ref, f.tenant_id, f.review_id, REVIEW_ROUND, PURPOSE, approverId, slackUserId, team, f.policy_id],
    ));
  }
  const posted = await slack.chat.postMessage({ channel: slackUserId, text: reviewFallbackText(f), blocks: reviewBlocks(f, ref, null) as never, unfurl_links: false, unfurl_media: false });
  await withTenant(db, f.tenant_id, (c) => c.query(`UPDATE channel_slack_messages SET channel = $2, ts = $3 WHERE ref = $1`, [ref, posted.channel ?? slackUserId, posted.ts ?? null]));
}

/** One line on how a review ended: who approved or rejected it, or that it expired. */
export function reviewStateText(f: ReviewFacts, names: Map<string, string>): string {
  const who = f.answers.map((a) => names.get(a.by) ?? a.by).join(', ');
  switch (f.status) {
    case 'approved': return `Approved by ${who}: the change is applied.`;
    case 'rejected': return `Rejected by ${who}: nothing changed.`;
    case 'expired': return `The review expired at ${f.deadline}: nothing changed.`;
    case 'open': return `The review is open until ${f.deadline}.`;
  }
}

/**
 * Every Slack message of a review shows how it ended and loses its buttons, however it ended (an answer on any
 * channel, or expiry). Never throws: the review is long decided.
 */
export async function closeReviewMessages(db: Db, slack: WebClient, f: ReviewFacts): Promise<RoundClosedResult> {
  if (f.status === 'open') return { updated: 0, errors: [] };
  const rows = (await withTenant(db, f.tenant_id, (c) => c.query<{ ref: string; channel: string; ts: string }>(
    `SELECT ref, channel, ts FROM channel_slack_messages WHERE tenant_id = $1 AND decision_id = $2 AND purpose = $3 AND ts IS NOT NULL`,
    [f.tenant_id, f.review_id, PURPOSE],
  ))).rows;
  const text = reviewStateText(f, await principalNames(db, f.tenant_id, f.answers.map((a) => a.by)));
  let updated = 0;
  const errors: string[] = [];
  for (const row of rows) {
    try {
      await slack.chat.update({ channel: row.channel, ts: row.ts, text, blocks: reviewBlocks(f, row.ref, text) as never });
      updated++;
    } catch (err) {
      errors.push(`${row.channel}/${row.ts}: ${errorText(err)}`.slice(0, 300));
    }
  }
  return { updated, errors };
}

export function makeAnnounceReviewClosed(db: Db, slack: WebClient | undefined) {
  return async function announceReviewClosed(input: ReviewNoticeInput): Promise<RoundClosedResult> {
    if (!slack || isPlatformScope(input.tenantId)) return { updated: 0, errors: [] };
    try {
      const facts = await loadReviewFacts(db, input.tenantId, input.policyId, input.reviewId);
      return facts ? await closeReviewMessages(db, slack, facts) : { updated: 0, errors: [] };
    } catch (err) {
      return { updated: 0, errors: [errorText(err)] };
    }
  };
}
