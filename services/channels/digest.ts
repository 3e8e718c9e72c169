import type { WebClient } from '@slack/web-api';
import { withSystem, withTenant, type Db } from '../events/db.ts';
import { digestEmail, type Mailer } from './email.ts';
import { loadRoundFacts, type RoundFacts } from './facts.ts';
import { claimDigest, unclaimDigest, type DigestClaim, type NotificationCap } from './notification-cap.ts';
import { DIGEST_MAX_ROUNDS, digestBlocks, newSlackRef } from './slack.ts';
import { boundSlackTeam } from './slack-workspaces.ts';
import { markMailed, mintLinks, withRetries } from './email-links.ts';

export type DigestDeps = {
  db: Db;
  cap: NotificationCap;
  slack?: WebClient | undefined;
  slackTeam?: ((slack: WebClient) => Promise<string>) | undefined;
  mailer?: Mailer | undefined;
  publicUrl: string;
  log?: (level: 'info' | 'warn', msg: string, data?: Record<string, unknown>) => void;
};

type Approver = { tenant_id: string; approver_id: string; channel: 'slack' | 'email' };

/**
 * Sends each approver's digest whose window now has room: everything held back by the cap, grouped into
 * one Slack message or one mail. Each waiting item is claimed once (in Postgres, under the approver's cap
 * lock), so however many workers sweep, a digest goes out once; one that fails goes back to waiting.
 * Rounds that closed meanwhile, or that the approver already answered, are left out; a digest with nothing
 * left to answer is not sent at all. Returns how many digests were sent.
 */
export async function sendDueDigests(deps: DigestDeps): Promise<number> {
  const waiting = (await withSystem(deps.db, 'channels', (c) => c.query<Approver>(
    `SELECT DISTINCT tenant_id, approver_id, channel FROM channel_digest_items WHERE digested_at IS NULL ORDER BY tenant_id, approver_id, channel LIMIT 500`,
  ))).rows;
  let sent = 0;
  for (const a of waiting) {
    if ((a.channel === 'slack' && !deps.slack) || (a.channel === 'email' && !deps.mailer)) continue;
    const claim = await claimDigest(deps.db, deps.cap, a.tenant_id, a.approver_id, a.channel);
    if (!claim) continue;
    try {
      if (await sendDigest(deps, a, claim)) sent++;
    } catch (err) {
      deps.log?.('warn', 'digest not sent; it waits for the next sweep', { channel: a.channel, approver: a.approver_id, error: err instanceof Error ? err.message : String(err) });
      await unclaimDigest(deps.db, a.tenant_id, a.approver_id, a.channel, claim);
    }
  }
  return sent;
}

async function sendDigest(deps: DigestDeps, a: Approver, claim: DigestClaim): Promise<boolean> {
  const person = (await withTenant(deps.db, a.tenant_id, (c) => c.query<{ email: string | null; slack_user_id: string | null }>(
    `SELECT email, slack_user_id FROM principals WHERE tenant_id = $1 AND id = $2 AND disabled_at IS NULL`, [a.tenant_id, a.approver_id],
  ))).rows[0];
  const rounds = new Map<string, { decision_id: string; round: number }>();
  for (const i of claim.items) rounds.set(`${i.decision_id}#${i.round}`, i);
  const open: RoundFacts[] = [];
  for (const r of rounds.values()) {
    const f = await loadRoundFacts(deps.db, a.tenant_id, r.decision_id, r.round).catch(() => null);
    if (f && f.status === 'open' && Date.parse(f.deadline) > Date.now() && !f.answers.some((x) => x.approver_id === a.approver_id)) open.push(f);
  }
  open.sort((x, y) => x.deadline.localeCompare(y.deadline));
  const address = a.channel === 'email' ? person?.email : person?.slack_user_id;
  // A tenant bound to another Slack workspace than the bot's gets nothing from it, digests included.
  const team = a.channel === 'slack' ? await deps.slackTeam!(deps.slack!) : null;
  const bound = team ? await boundSlackTeam(deps.db, a.tenant_id) : null;
  if (bound && bound !== team) deps.log?.('warn', 'digest not sent: the tenant is bound to another Slack workspace', { approver: a.approver_id, bound, team });
  if (open.length === 0 || !address || (bound && bound !== team)) {
    // Nothing left to answer (or nowhere to send it): the digest is settled without a message, and its slot is free.
    await withTenant(deps.db, a.tenant_id, (c) => c.query(`UPDATE channel_notification_sends SET failed_at = now() WHERE tenant_id = $1 AND id = $2`, [a.tenant_id, claim.slotId]));
    return false;
  }
  if (a.channel === 'email') {
    const minted = await mintLinks(deps.db, deps.publicUrl, open.map((f) => ({
      tenantId: a.tenant_id, decisionId: f.decision_id, round: f.round, purpose: 'digest', approverId: a.approver_id, email: address, expiresAt: f.final_deadline,
    })));
    const items = open.flatMap((facts, i) => (minted[i] ? [{ facts, link: minted[i].link }] : []));
    await withRetries(() => deps.mailer!.send(address, digestEmail(items)));
    await markMailed(deps.db, a.tenant_id, minted.flatMap((m) => (m ? [m.hash] : [])));
  } else {
    const slack = deps.slack!;
    const shown = open.slice(0, DIGEST_MAX_ROUNDS);
    const refs: string[] = [];
    for (const f of shown) {
      // One ref per round and approver for digests: a round in a second digest keeps its ref (and button).
      const res = await withTenant(deps.db, a.tenant_id, (c) => c.query<{ ref: string }>(
        `INSERT INTO channel_slack_messages (ref, tenant_id, decision_id, round, purpose, approver_id, slack_user_id, team_id) VALUES ($1, $2, $3, $4, 'digest', $5, $6, $7)
         ON CONFLICT (tenant_id, decision_id, round, purpose, approver_id, level) DO UPDATE SET slack_user_id = excluded.slack_user_id RETURNING ref`,
        [newSlackRef(), a.tenant_id, f.decision_id, f.round, a.approver_id, address, team!],
      ));
      refs.push(res.rows[0]!.ref);
    }
    const blocks = digestBlocks(open.map((facts, i) => ({ facts, ref: refs[i] ?? '', state: null })));
    const posted = await slack.chat.postMessage({ channel: address, text: `Countersign: ${open.length} approval requests waiting for you (digest)`, blocks: blocks as never, unfurl_links: false, unfurl_media: false });
    await withTenant(deps.db, a.tenant_id, (c) => c.query(
      `UPDATE channel_slack_messages SET channel = $2, ts = $3 WHERE ref = ANY($1::text[])`, [refs, posted.channel ?? address, posted.ts ?? null],
    ));
  }
  deps.log?.('info', 'digest sent', { channel: a.channel, approver: a.approver_id, rounds: open.length });
  return true;
}

/** Sweeps for due digests every `everyMs` until stopped; a failed sweep is logged and retried next time. */
export function startDigestSweeper(deps: DigestDeps, everyMs = Math.min(60_000, Math.max(1_000, Math.floor((deps.cap.windowSec * 1000) / 12)))): { stop: () => Promise<void> } {
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;
  const timer = setInterval(() => {
    running = running.then(() => (stopped ? 0 : sendDueDigests(deps))).catch((err: unknown) => deps.log?.('warn', 'digest sweep failed', { error: err instanceof Error ? err.message : String(err) }));
  }, everyMs);
  timer.unref();
  return {
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
