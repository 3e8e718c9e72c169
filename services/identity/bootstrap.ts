import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Role } from '../../schemas/identity.ts';
import type { Db } from '../events/db.ts';
import { withTenant } from '../events/db.ts';
import { generateApiKey } from './api-keys.ts';
import { authenticate } from './principals.ts';
import { appendTenantEvents, SYSTEM_ACTOR } from './tenant-stream.ts';

export const bootstrapPrincipalId = (tenantId: string) => `prn_bootstrap_${tenantId}`;

/**
 * The bootstrap principal's roles in the default tenant: enough to set up (tenants, members, policies,
 * reading), not to ask for decisions nor to approve them. Agents get keys of their own.
 */
export const BOOTSTRAP_ROLES: Role[] = ['admin', 'author', 'auditor'];

export type BootstrapResult =
  | { token: string; created: boolean }
  /** The bootstrap principal exists but the key file's key no longer works: it is never re-issued by itself. */
  | { token: null; created: false; refused: string };

/**
 * First start: the default tenant, the bootstrap principal (platform admin, with BOOTSTRAP_ROLES in the
 * default tenant) and its key, written once to a 0600 file, each recorded on the tenant's stream. Later
 * starts reuse the key while it works. A bootstrap key that was revoked, expired, disabled or lost is not
 * replaced: revoking the bootstrap principal must survive a restart, so an operator who needs a platform
 * admin again uses another platform admin's key.
 */
export async function ensureBootstrap(db: Db, opts: { tenantId: string; keyFile: string }): Promise<BootstrapResult> {
  let existing = '';
  try {
    existing = readFileSync(opts.keyFile, 'utf8').trim();
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
  if (existing && (await authenticate(db, existing, new Date()))) return { token: existing, created: false };
  const key = generateApiKey();
  const principalId = bootstrapPrincipalId(opts.tenantId);
  const created = await withTenant(db, opts.tenantId, async (c) => {
    const known = await c.query('SELECT 1 FROM principals WHERE tenant_id = $1 AND id = $2', [opts.tenantId, principalId]);
    if (known.rowCount) return false;
    const tenant = await c.query<{ name: string; default_decision: 'DENY'; settings: Record<string, never> }>(
      `INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING name, default_decision, settings`,
      [opts.tenantId, opts.tenantId],
    );
    await c.query(
      `INSERT INTO principals (id, tenant_id, name, kind, roles, groups, platform_admin) VALUES ($1, $2, 'bootstrap admin', 'person', $3, '{}', true)`,
      [principalId, opts.tenantId, BOOTSTRAP_ROLES],
    );
    await c.query(`INSERT INTO api_keys (id, prefix, secret_hash, principal_id, tenant_id, name) VALUES ($1, $2, $3, $4, $5, 'bootstrap')`, [
      key.id, key.prefix, key.secretHash, principalId, opts.tenantId,
    ]);
    await appendTenantEvents(c, opts.tenantId, [
      ...(tenant.rows[0] ? [{ type: 'TenantCreated' as const, data: { tenant_id: opts.tenantId, config: tenant.rows[0], by: SYSTEM_ACTOR } }] : []),
      { type: 'PrincipalCreated', data: { principal_id: principalId, kind: 'person', platform_admin: true, access: { name: 'bootstrap admin', roles: BOOTSTRAP_ROLES, groups: [], disabled: false, agent_id: null, acts_for: [] }, by: SYSTEM_ACTOR } },
      { type: 'ApiKeyCreated', data: { key_id: key.id, prefix: key.prefix, principal_id: principalId, name: 'bootstrap', expires_at: null, by: SYSTEM_ACTOR } },
    ]);
    return true;
  });
  if (!created) {
    return {
      token: null,
      created: false,
      refused: `the bootstrap principal ${principalId} exists and the key in ${opts.keyFile} does not work (revoked, expired, disabled or lost): it is not re-issued`,
    };
  }
  mkdirSync(path.dirname(opts.keyFile), { recursive: true });
  writeFileSync(opts.keyFile, `${key.token}\n`, { mode: 0o600 });
  return { token: key.token, created: true };
}
