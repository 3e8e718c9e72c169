import type { WebClient } from '@slack/web-api';
import { withSystem, withTenant, type Db } from '../services/events/db.ts';
import { isPlatformScope } from '../services/events/stream-ids.ts';
import { reviewEmail } from '../services/channels/email.ts';
import { mailLink } from '../services/channels/email-links.ts';
import { loadReviewFacts, reviewPurpose, type ReviewFacts } from '../services/channels/review-facts.ts';
import { principalNames } from '../services/channels/round-messages.ts';
import { newSlackRef, reviewBlocks, reviewFallbackText } from '../services/channels/slack.ts';
import { boundSlackTeam } from '../services/channels/slack-workspaces.ts';
import { REVIEWER_ROLE } from '../services/lifecycle/activation-review.ts';
import { errorText, slackTeamOf, type ChannelDeps } from './notify-approvers.ts';
import type { Delivery, ReviewNoticeInput, RoundClosedResult } from './types.ts';

/**
 * A review's messages and links are keyed like a round's: the review id, round 1, purpose `review` (a tenant's
 * policy) or `platform_review` (a platform policy's, in the rows of each reviewer's home tenant).
 */
const REVIEW_ROUND = 1;

type Reviewer = { id: string; tenant_id: string; email: string | null; slack_user_id: string | null };

/**
 * Tells the admins who may answer a four-eyes review (every admin of the tenant but the requester and the
 * change's authors: the same people `checkReviewAnswer` lets answer) that a second pair of eyes is wanted: a
 * Slack message with Approve and Reject, and an email with a single-use link to a confirmation page. The answers
 * go through the API's own review path (services/lifecycle/activation-reviews.ts). Each delivery is reported,
 * a failed one with its error; nothing here ever throws for a channel's fault, and nothing here decides.
 * A platform policy's review goes to the platform admins (but its requester and authors), wherever their home
 * tenant: each one's message and link live in that tenant's rows, under its Slack workspace binding.
 */
export function makeNotifyReviewers(db: Db, channels: ChannelDeps = {}) {
  const slackTeam = slackTeamOf();
  return async function notifyReviewers(input: ReviewNoticeInput): Promise<Delivery[]> {
    const facts = await loadReviewFacts(db, input.tenantId, input.policyId, input.reviewId);
    if (!facts || facts.status !== 'open') return [];
    const purpose = reviewPurpose(input.tenantId);
    const rows = await reviewersOf(db, input.tenantId, [facts.requested_by, ...facts.authors]);
    const deliveries: Delivery[] = rows.map((r) => ({ channel: 'dashboard' as const, recipient: r.id }));
    for (const r of rows) {
      if (r.slack_user_id && channels.slack) {
        const slack = channels.slack;
        deliveries.push(await deliver('slack', r.id, async () => postReview(db, slack, await slackTeam(slack), facts, r, purpose)));
      }
      if (r.email && channels.mailer) {
        const mailer = channels.mailer;
        deliveries.push(await deliver('email', r.id, () => mailLink(db, mailer, channels.publicUrl ?? '', {
          tenantId: r.tenant_id, decisionId: facts.review_id, round: REVIEW_ROUND, purpose, approverId: r.id, email: r.email!, expiresAt: facts.deadline, policyId: facts.policy_id,
        }, (link) => reviewEmail(facts, link))));
      }
    }
    return deliveries;
  };
}

/**
 * Who may answer a review, as `checkReviewAnswer` and the worker's reviewer check see it: the tenant's enabled
 * admins, or for a platform policy the enabled platform admins of every tenant; never the excluded (the
 * requester and the change's authors).
 */
async function reviewersOf(db: Db, owner: string, excluded: string[]): Promise<Reviewer[]> {
  const columns = 'id, tenant_id, email, slack_user_id';
  if (isPlatformScope(owner)) {
    return (await withSystem(db, 'platform-admin', (c) => c.query<Reviewer>(
      `SELECT ${columns} FROM principals WHERE platform_admin AND kind = 'person' AND NOT (id = ANY($1::text[])) AND disabled_at IS NULL ORDER BY id`, [excluded],
    ))).rows;
  }
  return (await withTenant(db, owner, (c) => c.query<Reviewer>(
    `SELECT ${columns} FROM principals WHERE tenant_id = $1 AND $2 = ANY(roles) AND NOT (id = ANY($3::text[])) AND disabled_at IS NULL ORDER BY id`,
    [owner, REVIEWER_ROLE, excluded],
  ))).rows;
}

async function deliver(channel: 'slack' | 'email', recipient: string, fn: () => Promise<void>): Promise<Delivery> {
  try {
    await fn();
    return { channel, recipient };
  } catch (err) {
    return { channel, recipient, error: errorText(err) };
  }
}

/** The reviewer's message, in the rows of the reviewer's home tenant (the policy's tenant, or for a platform policy the admin's own). */
async function postReview(db: Db, slack: WebClient, team: string, f: ReviewFacts, reviewer: Reviewer, purpose: string): Promise<void> {
  const home = reviewer.tenant_id;
  const slackUserId = reviewer.slack_user_id!;
  // One message per reviewer and review: a retried activity does not post twice.
  const existing = (await withTenant(db, home, (c) => c.query<{ ref: string; ts: string | null }>(
    `SELECT ref, ts FROM channel_slack_messages WHERE tenant_id = $1 AND decision_id = $2 AND round = $3 AND purpose = $4 AND approver_id = $5 AND level = 0`,
    [home, f.review_id, REVIEW_ROUND, purpose, reviewer.id],
  ))).rows[0];
  if (existing?.ts) return;
  const bound = await boundSlackTeam(db, home);
  if (bound && bound !== team) throw new Error(`the Slack bot is installed in workspace ${team}, but tenant ${home} is bound to ${bound}`);
  const ref = existing?.ref ?? newSlackRef();
  if (!existing) {
    await withTenant(db, home, (c) => c.query(
      `INSERT INTO channel_slack_messages (ref, tenant_id, decision_id, round, purpose, approver_id, slack_user_id, team_id, level, policy_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)`,
      [ref, home, f.review_id, REVIEW_ROUND, purpose, reviewer.id, slackUserId, team, f.policy_id],
    ));
  }
  const posted = await slack.chat.postMessage({ channel: slackUserId, text: reviewFallbackText(f), blocks: reviewBlocks(f, ref, null) as never, unfurl_links: false, unfurl_media: false });
  await withTenant(db, home, (c) => c.query(`UPDATE channel_slack_messages SET channel = $2, ts = $3 WHERE ref = $1`, [ref, posted.channel ?? slackUserId, posted.ts ?? null]));
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
  const platform = isPlatformScope(f.tenant_id);
  // A platform review's messages are rows of its reviewers' home tenants: found across tenants, by the review id.
  const rows = platform
    ? (await withSystem(db, 'channels', (c) => c.query<{ ref: string; channel: string; ts: string }>(
      `SELECT ref, channel, ts FROM channel_slack_messages WHERE decision_id = $1 AND purpose = 'platform_review' AND ts IS NOT NULL`, [f.review_id],
    ))).rows
    : (await withTenant(db, f.tenant_id, (c) => c.query<{ ref: string; channel: string; ts: string }>(
      `SELECT ref, channel, ts FROM channel_slack_messages WHERE tenant_id = $1 AND decision_id = $2 AND purpose = 'review' AND ts IS NOT NULL`,
      [f.tenant_id, f.review_id],
    ))).rows;
  const text = reviewStateText(f, await reviewerNames(db, f.tenant_id, f.answers.map((a) => a.by)));
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

/** Names of the reviewers who answered: of the tenant, or for a platform review of the platform admins, wherever they live. */
async function reviewerNames(db: Db, owner: string, ids: string[]): Promise<Map<string, string>> {
  if (!isPlatformScope(owner)) return principalNames(db, owner, ids);
  if (ids.length === 0) return new Map();
  const res = await withSystem(db, 'platform-admin', (c) => c.query<{ id: string; name: string }>('SELECT id, name FROM principals WHERE platform_admin AND id = ANY($1::text[])', [ids]));
  return new Map(res.rows.map((r) => [r.id, r.name]));
}

export function makeAnnounceReviewClosed(db: Db, slack: WebClient | undefined) {
  return async function announceReviewClosed(input: ReviewNoticeInput): Promise<RoundClosedResult> {
    if (!slack) return { updated: 0, errors: [] };
    try {
      const facts = await loadReviewFacts(db, input.tenantId, input.policyId, input.reviewId);
      return facts ? await closeReviewMessages(db, slack, facts) : { updated: 0, errors: [] };
    } catch (err) {
      return { updated: 0, errors: [errorText(err)] };
    }
  };
}
