import { withTenant, type Db } from '../events/db.ts';
import { newEmailToken, type Mailer } from './email.ts';

/** Retries a send a few times with a short backoff; the last error is the delivery's error. */
export async function withRetries<T>(fn: () => Promise<T>, attempts = 3, firstDelayMs = 300): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await fn();
    } catch (err) {
      last = err;
      if (i < attempts - 1) await new Promise((r) => setTimeout(r, firstDelayMs * 2 ** i));
    }
  }
  throw last;
}

/** What a link answers: a round (its decision and number), or a four-eyes review (`decisionId` the review id, round 1, `policyId`). */
export type LinkTarget = { tenantId: string; decisionId: string; round: number; purpose: string; level?: number; approverId: string; email: string; expiresAt: string; policyId?: string };

/**
 * Mints a link (one per approver, round and purpose) and mails it. A row left by an attempt whose mail never
 * went out gets a fresh token, so the only live link is the one in the mail that was sent.
 */
export async function mailLink(
  db: Db, mailer: Mailer, publicUrl: string,
  t: LinkTarget,
  compose: (link: string) => { subject: string; text: string; html: string },
): Promise<void> {
  const [minted] = await mintLinks(db, publicUrl, [t]);
  if (!minted) throw new Error('the link for this round was already used');
  await withRetries(() => mailer.send(t.email, compose(minted.link)));
  await markMailed(db, t.tenantId, [minted.hash]);
}

/** Mints one live link per (approver, decision, round, purpose), replacing an unused one; null where the old one was used. */
export async function mintLinks(
  db: Db, publicUrl: string,
  ts: LinkTarget[],
): Promise<Array<{ link: string; hash: string } | null>> {
  const out: Array<{ link: string; hash: string } | null> = [];
  for (const t of ts) {
    const { token, hash } = newEmailToken();
    const written = await withTenant(db, t.tenantId, (c) => c.query(
      `INSERT INTO channel_email_tokens (token_hash, tenant_id, decision_id, round, purpose, approver_id, email, expires_at, level, policy_id)
       -- Never earlier than the round's other links: an escalation may have moved them on while this one was minted.
       VALUES ($1, $2, $3, $4, $5, $6, $7, GREATEST($8::timestamptz, (SELECT max(expires_at) FROM channel_email_tokens WHERE tenant_id = $2 AND decision_id = $3 AND round = $4)), $9, $10)
       ON CONFLICT (tenant_id, decision_id, round, purpose, approver_id, level)
         DO UPDATE SET token_hash = excluded.token_hash, email = excluded.email, expires_at = excluded.expires_at, created_at = now(), sent_at = NULL
         WHERE channel_email_tokens.used_at IS NULL`,
      [hash, t.tenantId, t.decisionId, t.round, t.purpose, t.approverId, t.email, t.expiresAt, t.level ?? 0, t.policyId ?? null],
    ));
    out.push(written.rowCount === 1 ? { link: `${publicUrl.replace(/\/+$/, '')}/v1/email-approvals/${token}`, hash } : null);
  }
  return out;
}

export async function markMailed(db: Db, tenantId: string, hashes: string[]): Promise<void> {
  await withTenant(db, tenantId, (c) => c.query(`UPDATE channel_email_tokens SET sent_at = now() WHERE token_hash = ANY($1::text[])`, [hashes]));
}
