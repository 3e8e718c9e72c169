// One-time console sign-in links (`countersign login --web`). A person's API key mints a link; whoever opens it
// first gets a console session for that same principal, once, within minutes. Postgres stores only the token's
// SHA-256 (migration 0025), bound to the tenant, the principal and the minting key's public prefix, so a copy of
// the table signs nobody in, and revoking the key (or disabling the member) kills its unspent links.
import { createHash, randomBytes } from 'node:crypto';
import { withSystem, withTenant, type Db } from '../events/db.ts';
import type { Principal } from '../identity/principals.ts';

/** 256 random bits after a fixed prefix; nothing else is ever looked up. */
export const LINK_TOKEN = /^csl_[A-Za-z0-9_-]{43}$/;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Mints a link for the principal of the key that asked; answers the token (shown once) and its expiry. */
export async function mintSignInLink(db: Db, principal: Principal, ttlSec: number, now = new Date()): Promise<{ token: string; expiresAt: Date }> {
  const token = `csl_${randomBytes(32).toString('base64url')}`;
  const expiresAt = new Date(now.getTime() + ttlSec * 1000);
  await withTenant(db, principal.tenant_id, (c) => c.query(
    'INSERT INTO console_links (id_hash, tenant_id, principal_id, key_prefix, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)',
    [sha256(token), principal.tenant_id, principal.id, principal.key_prefix, now, expiresAt],
  ));
  return { token, expiresAt };
}

type Row = Principal & { expires_at: Date };

/**
 * Spends a link: the principal it was minted for, or null for a malformed, unknown, spent or expired token, or
 * one whose key or member no longer authenticates. The first redemption spends the link whatever its outcome,
 * so a token is good for one try. The tenant is not known until the link is found, so the lookup runs in the
 * `authenticate` scope, by the token's hash and nothing else.
 */
export async function redeemSignInLink(db: Db, token: string, now = new Date()): Promise<Principal | null> {
  if (!LINK_TOKEN.test(token)) return null;
  const res = await withSystem(db, 'authenticate', (c) => c.query<Row>(
    `WITH spent AS (
       UPDATE console_links SET used_at = $2 WHERE id_hash = $1 AND used_at IS NULL
       RETURNING tenant_id, principal_id, key_prefix, expires_at
     )
     SELECT p.id, p.tenant_id, p.name, p.kind, p.roles, p.groups, p.platform_admin, p.agent_id, p.acts_for, s.key_prefix, s.expires_at
       FROM spent s
       JOIN principals p ON p.id = s.principal_id AND p.tenant_id = s.tenant_id AND p.disabled_at IS NULL
       JOIN api_keys k ON k.prefix = s.key_prefix AND k.tenant_id = s.tenant_id AND k.principal_id = s.principal_id
                      AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2)`,
    [sha256(token), now],
  ));
  const row = res.rows[0];
  if (!row || row.expires_at <= now || row.kind !== 'person') return null;
  const { expires_at: _expires, ...principal } = row;
  return principal;
}
