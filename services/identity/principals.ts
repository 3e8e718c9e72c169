import { ROLES, type Role } from '../../schemas/identity.ts';
import { withSystem, type Db } from '../events/db.ts';
import { parseApiKey, secretMatches } from './api-keys.ts';

export { ROLES, type Role };

export type Principal = {
  id: string;
  tenant_id: string;
  name: string;
  kind: 'person' | 'agent';
  roles: Role[];
  groups: string[];
  platform_admin: boolean;
  /** The agent id this key decides as (null: none of its own), and the agent ids it may act for. */
  agent_id: string | null;
  acts_for: string[];
  key_prefix: string;
};

/** An API key's row with its principal: what authentication needs, read by the key's public prefix. */
export type KeyRecord = Omit<Principal, 'key_prefix'> & { secret_hash: string; expires_at: Date | null; revoked_at: Date | null; disabled_at: Date | null };

/** Reads where a key's record comes from: Postgres, or a cache in front of it (services/identity/key-cache.ts). */
export type KeyLookup = (db: Db, prefix: string) => Promise<KeyRecord | null>;

/**
 * One key's record by its public prefix. The tenant is not known until the key is found, so the lookup runs
 * in the `authenticate` system scope; it reads one row by the prefix and nothing else.
 */
export async function lookupKey(db: Db, prefix: string): Promise<KeyRecord | null> {
  const res = await withSystem(db, 'authenticate', (c) => c.query<KeyRecord>(
    `SELECT p.id, p.tenant_id, p.name, p.kind, p.roles, p.groups, p.platform_admin, p.agent_id, p.acts_for, p.disabled_at, k.secret_hash, k.expires_at, k.revoked_at
       FROM api_keys k JOIN principals p ON p.id = k.principal_id AND p.tenant_id = k.tenant_id WHERE k.prefix = $1`,
    [prefix],
  ));
  return res.rows[0] ?? null;
}

/**
 * Resolves a bearer token to its principal, or null for any bad, unknown, revoked or expired key, or a
 * disabled member. The secret, the expiry and the revocation are checked on every call, also when the record
 * comes from a cache.
 */
export async function authenticate(db: Db, token: string, now: Date, lookup: KeyLookup = lookupKey): Promise<Principal | null> {
  const parsed = parseApiKey(token);
  if (!parsed) return null;
  const row = await lookup(db, parsed.prefix);
  // Compare even when no row matched, so an unknown prefix takes as long as a wrong secret.
  const matches = secretMatches(parsed.secret, row?.secret_hash ?? '0'.repeat(64));
  if (!row || !matches) return null;
  if (row.revoked_at || (row.expires_at && row.expires_at <= now) || row.disabled_at) return null;
  return { id: row.id, tenant_id: row.tenant_id, name: row.name, kind: row.kind, roles: row.roles, groups: row.groups, platform_admin: row.platform_admin, agent_id: row.agent_id, acts_for: row.acts_for, key_prefix: parsed.prefix };
}
