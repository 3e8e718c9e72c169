import type { ApiKeyView } from '../../schemas/identity.ts';
import { withTenant, type Db } from '../events/db.ts';
import { generateApiKey } from './api-keys.ts';
import { keysetPage, type Keyset, type Page } from './keyset.ts';

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

/** A new key for a principal of this tenant; null when the principal is not one of its members. */
export async function createApiKey(db: Db, tenantId: string, opts: { principalId: string; name: string; expiresAt?: string | undefined; now: Date }): Promise<(ApiKeyView & { api_key: string }) | null> {
  const key = generateApiKey();
  const res = await withTenant(db, tenantId, (c) => c.query<KeyRow>(
    `INSERT INTO api_keys (id, prefix, secret_hash, principal_id, tenant_id, name, expires_at)
       SELECT $1, $2, $3, p.id, p.tenant_id, $5, $6 FROM principals p WHERE p.tenant_id = $4 AND p.id = $7
     RETURNING ${COLUMNS}`,
    [key.id, key.prefix, key.secretHash, tenantId, opts.name, opts.expiresAt ?? null, opts.principalId],
  ));
  const row = res.rows[0];
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

/** Revokes a key (idempotent: revoking twice keeps the first time). The row stays, for the record. */
export async function revokeApiKey(db: Db, tenantId: string, id: string, now: Date): Promise<ApiKeyView | null> {
  const res = await withTenant(db, tenantId, (c) => c.query<KeyRow>(
    `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
    [tenantId, id, now],
  ));
  return res.rows[0] ? keyView(res.rows[0], now) : null;
}
