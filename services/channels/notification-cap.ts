import { withTenant, type Db, type Queryable } from '../events/db.ts';

/** At most `max` notifications per approver and channel in any `windowSec` (default 10 per hour). */
export type NotificationCap = { max: number; windowSec: number };
export const DEFAULT_CAP: NotificationCap = { max: 10, windowSec: 3600 };

export type Notification = {
  tenantId: string;
  approverId: string;
  channel: 'slack' | 'email';
  decisionId: string;
  round: number;
  purpose: 'request' | 'escalation' | 'reminder';
};

/** A slot to send now (release it if the send fails), or the notification waits for the approver's digest. */
export type Slot = { kind: 'send'; id: string } | { kind: 'queued' };

const lockKey = (tenantId: string, approverId: string, channel: string) => `countersign-notify-cap:${tenantId}:${approverId}:${channel}`;

/**
 * Takes one of the approver's notifications for this window, or queues this one for their digest. Counted
 * in Postgres under an advisory lock per approver and channel, so concurrent workers never exceed the cap.
 * A notification already waiting for the digest stays there (a retried activity does not also send it).
 */
export async function reserveOrQueue(db: Db, cap: NotificationCap, n: Notification): Promise<Slot> {
  return withTenant(db, n.tenantId, async (c) => {
    await c.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [lockKey(n.tenantId, n.approverId, n.channel)]);
    const waiting = await c.query(
      `SELECT 1 FROM channel_digest_items WHERE tenant_id = $1 AND approver_id = $2 AND channel = $3 AND decision_id = $4 AND round = $5 AND purpose = $6 AND digested_at IS NULL`,
      [n.tenantId, n.approverId, n.channel, n.decisionId, n.round, n.purpose],
    );
    if (waiting.rowCount) return { kind: 'queued' };
    const used = await sentInWindow(c, cap, n.tenantId, n.approverId, n.channel);
    if (used < cap.max) {
      const ins = await c.query<{ id: string }>(
        `INSERT INTO channel_notification_sends (tenant_id, approver_id, channel, decision_id, round, purpose) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
        [n.tenantId, n.approverId, n.channel, n.decisionId, n.round, n.purpose],
      );
      return { kind: 'send', id: ins.rows[0]!.id };
    }
    await c.query(
      `INSERT INTO channel_digest_items (tenant_id, approver_id, channel, decision_id, round, purpose) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (tenant_id, approver_id, channel, decision_id, round, purpose) DO UPDATE SET digested_at = NULL, queued_at = now()`,
      [n.tenantId, n.approverId, n.channel, n.decisionId, n.round, n.purpose],
    );
    return { kind: 'queued' };
  });
}

async function sentInWindow(c: Queryable, cap: NotificationCap, tenantId: string, approverId: string, channel: string): Promise<number> {
  const res = await c.query<{ n: string }>(
    `SELECT count(*) AS n FROM channel_notification_sends
      WHERE tenant_id = $1 AND approver_id = $2 AND channel = $3 AND failed_at IS NULL AND at > now() - make_interval(secs => $4)`,
    [tenantId, approverId, channel, cap.windowSec],
  );
  return Number(res.rows[0]!.n);
}

/** A send that failed gives its slot back (marked, not deleted: the application role cannot delete). */
export async function releaseSlot(db: Db, tenantId: string, id: string): Promise<void> {
  await withTenant(db, tenantId, (c) => c.query(`UPDATE channel_notification_sends SET failed_at = now() WHERE tenant_id = $1 AND id = $2`, [tenantId, id]));
}

export type DigestClaim = { slotId: string; items: Array<{ decision_id: string; round: number; purpose: string }> };

/**
 * Claims everything waiting for one approver's digest on one channel, when their window has room for one
 * more notification (the digest itself). Null when there is nothing waiting or no room yet.
 */
export async function claimDigest(db: Db, cap: NotificationCap, tenantId: string, approverId: string, channel: 'slack' | 'email'): Promise<DigestClaim | null> {
  return withTenant(db, tenantId, async (c) => {
    await c.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [lockKey(tenantId, approverId, channel)]);
    if ((await sentInWindow(c, cap, tenantId, approverId, channel)) >= cap.max) return null;
    const items = await c.query<{ decision_id: string; round: number; purpose: string }>(
      `UPDATE channel_digest_items SET digested_at = now() WHERE tenant_id = $1 AND approver_id = $2 AND channel = $3 AND digested_at IS NULL
       RETURNING decision_id, round, purpose`,
      [tenantId, approverId, channel],
    );
    if (items.rows.length === 0) return null;
    const slot = await c.query<{ id: string }>(
      `INSERT INTO channel_notification_sends (tenant_id, approver_id, channel, purpose) VALUES ($1, $2, $3, 'digest') RETURNING id`,
      [tenantId, approverId, channel],
    );
    return { slotId: slot.rows[0]!.id, items: items.rows };
  });
}

/** A digest that could not be sent goes back to waiting (and its slot is released), to be tried again. */
export async function unclaimDigest(db: Db, tenantId: string, approverId: string, channel: string, claim: DigestClaim): Promise<void> {
  await withTenant(db, tenantId, async (c) => {
    await c.query(`UPDATE channel_notification_sends SET failed_at = now() WHERE tenant_id = $1 AND id = $2`, [tenantId, claim.slotId]);
    for (const i of claim.items) {
      await c.query(
        `UPDATE channel_digest_items SET digested_at = NULL WHERE tenant_id = $1 AND approver_id = $2 AND channel = $3 AND decision_id = $4 AND round = $5 AND purpose = $6`,
        [tenantId, approverId, channel, i.decision_id, i.round, i.purpose],
      );
    }
  });
}
