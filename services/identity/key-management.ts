import type { ApiKeyView } from '../../schemas/identity.ts';
import { CountersignError } from '../errors.ts';
import { withTenant, type Db } from '../events/db.ts';
import { generateApiKey } from './api-keys.ts';
import { keysetPage, type Keyset, type Page } from './keyset.ts';
import type { Actor } from './members.ts';
import { appendTenantEvents } from './tenant-stream.ts';

type KeyRow = { id: string; prefix: string; name: string; principal_id: string; created_at: Date; expires_at: Date | null; revoked_at: Date | null; created_key: string };
const COLUMNS = 'id, prefix, name, principal_id, created_at, expires_at, revoked_at, created_at::text AS created_key';

/** A key as anyone may see it later: never the secret, nor its hash. */
export function keyView(r: KeyRow, now: Date): ApiKeyView {
  return {
    id: r.id, prefix: r.prefix, name: r.name, principal_id: r.principal_id, created_at: r.created_at.toISOString(),
    expires_at: r.expires_at?.toISOString() ?? null, revoked_at: r.revoked_at?.toISOString() ?? null,
    status: r.revoked_at ? 'revoked' : r.expires_at && r.expires_at <= now ? 'expired' : 'active',
  };
}

const platformRefusal = (principalId: string) => new CountersignError('platform_principal', `${principalId} is a platform admin: only a platform admin manages its keys`);

/**
 * A new key for a principal of this tenant; null when the principal is not one of its members. A key for a
 * platform admin is minted only by a platform admin (a tenant admin would otherwise become one).
 */
export async function createApiKey(db: Db, tenantId: string, opts: { principalId: string; name: string; expiresAt?: string | undefined; now: Date; actor: Actor }): Promise<(ApiKeyView & { api_key: string }) | null> {
  const key = generateApiKey();
  const row = await withTenant(db, tenantId, async (c) => {
    const owner = await c.query<{ platform_admin: boolean }>('SELECT platform_admin FROM principals WHERE tenant_id = $1 AND id = $2 FOR SHARE', [tenantId, opts.principalId]);
    if (!owner.rows[0]) return null;
    if (owner.rows[0].platform_admin && !opts.actor.platformAdmin) throw platformRefusal(opts.principalId);
    const res = await c.query<KeyRow>(
      `INSERT INTO api_keys (id, prefix, secret_hash, principal_id, tenant_id, name, expires_at) VALUES ($1, $2, $3, $7, $4, $5, $6) RETURNING ${COLUMNS}`,
      [key.id, key.prefix, key.secretHash, tenantId, opts.name, opts.expiresAt ?? null, opts.principalId],
    );
    const r = res.rows[0]!;
    await appendTenantEvents(c, tenantId, [{ type: 'ApiKeyCreated', data: { key_id: r.id, prefix: r.prefix, principal_id: r.principal_id, name: r.name, expires_at: r.expires_at?.toISOString() ?? null, by: opts.actor.principalId } }], opts.now);
    return r;
  });
  return row ? { ...keyView(row, opts.now), api_key: key.token } : null;
}

export async function listApiKeys(db: Db, tenantId: string, opts: { limit: number; after: Keyset | null; principalId?: string | undefined; now: Date }): Promise<Page<ApiKeyView>> {
  const res = await withTenant(db, tenantId, (c) => c.query<KeyRow>(
    `SELECT ${COLUMNS} FROM api_keys
      WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2::timestamptz, $3::text)) AND ($4::text IS NULL OR principal_id = $4)
      ORDER BY created_at, id LIMIT $5`,
    [tenantId, opts.after?.t ?? null, opts.after?.id ?? '', opts.principalId ?? null, opts.limit + 1],
  ));
  return keysetPage(res.rows, opts.limit, (r) => keyView(r, opts.now));
}

export async function getApiKey(db: Db, tenantId: string, id: string, now: Date): Promise<ApiKeyView | null> {
  const res = await withTenant(db, tenantId, (c) => c.query<KeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2`, [tenantId, id]));
  return res.rows[0] ? keyView(res.rows[0], now) : null;
}

/**
 * Revokes a key (idempotent: revoking twice keeps the first time, and records it once). The row stays, for
 * the record. A platform admin's keys are revoked only by a platform admin.
 */
export async function revokeApiKey(db: Db, tenantId: string, id: string, now: Date, actor: Actor): Promise<ApiKeyView | null> {
  return withTenant(db, tenantId, async (c) => {
    const cur = await c.query<KeyRow & { platform_admin: boolean }>(
      `SELECT k.id, k.prefix, k.name, k.principal_id, k.created_at, k.expires_at, k.revoked_at, k.created_at::text AS created_key, p.platform_admin
         FROM api_keys k JOIN principals p ON p.id = k.principal_id AND p.tenant_id = k.tenant_id WHERE k.tenant_id = $1 AND k.id = $2 FOR UPDATE OF k`,
      [tenantId, id],
    );
    const row = cur.rows[0];
    if (!row) return null;
    if (row.platform_admin && !actor.platformAdmin) throw platformRefusal(row.principal_id);
    if (row.revoked_at) return keyView(row, now);
    const res = await c.query<KeyRow>(`UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`, [tenantId, id, now]);
    await appendTenantEvents(c, tenantId, [{ type: 'ApiKeyRevoked', data: { key_id: row.id, prefix: row.prefix, principal_id: row.principal_id, by: actor.principalId } }], now);
    return keyView(res.rows[0]!, now);
  });
}
