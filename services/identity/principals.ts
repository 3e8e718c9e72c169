import type { Db } from '../events/db.ts';
import { parseApiKey, secretMatches } from './api-keys.ts';

export const ROLES = ['agent', 'approver', 'author', 'admin', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

export type Principal = {
  id: string;
  tenant_id: string;
  name: string;
  kind: 'person' | 'agent';
  roles: Role[];
  groups: string[];
  platform_admin: boolean;
  key_prefix: string;
};

/** Resolves a bearer token to its principal, or null for any bad, unknown, revoked or expired key. */
export async function authenticate(db: Db, token: string, now: Date): Promise<Principal | null> {
  const parsed = parseApiKey(token);
  if (!parsed) return null;
  const res = await db.query<Omit<Principal, 'key_prefix'> & { secret_hash: string; expires_at: Date | null; revoked_at: Date | null }>(
    `SELECT p.id, p.tenant_id, p.name, p.kind, p.roles, p.groups, p.platform_admin, k.secret_hash, k.expires_at, k.revoked_at
       FROM api_keys k JOIN principals p ON p.id = k.principal_id WHERE k.prefix = $1`,
    [parsed.prefix],
  );
  const row = res.rows[0];
  if (!row || !secretMatches(parsed.secret, row.secret_hash)) return null;
  if (row.revoked_at || (row.expires_at && row.expires_at <= now)) return null;
  return { id: row.id, tenant_id: row.tenant_id, name: row.name, kind: row.kind, roles: row.roles, groups: row.groups, platform_admin: row.platform_admin, key_prefix: parsed.prefix };
}
