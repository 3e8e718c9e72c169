import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROLES } from '../../schemas/identity.ts';
import type { Db } from '../events/db.ts';
import { withTenant } from '../events/db.ts';
import { generateApiKey } from './api-keys.ts';
import { authenticate } from './principals.ts';

export const bootstrapPrincipalId = (tenantId: string) => `prn_bootstrap_${tenantId}`;

/**
 * First start: the default tenant, a bootstrap principal (platform admin, and every role in the default
 * tenant) and its key, written once to a 0600 file. Later starts reuse the key while it still works; a
 * revoked or lost key is replaced by a new one (the old one stays revoked).
 */
export async function ensureBootstrap(db: Db, opts: { tenantId: string; keyFile: string }): Promise<{ token: string; created: boolean }> {
  try {
    const existing = readFileSync(opts.keyFile, 'utf8').trim();
    if (existing && (await authenticate(db, existing, new Date()))) return { token: existing, created: false };
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
  const key = generateApiKey();
  const principalId = bootstrapPrincipalId(opts.tenantId);
  await withTenant(db, opts.tenantId, async (c) => {
    await c.query(`INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, [opts.tenantId, opts.tenantId]);
    await c.query(
      `INSERT INTO principals (id, tenant_id, name, kind, roles, groups, platform_admin)
       VALUES ($1, $2, 'bootstrap admin', 'person', $3, $4, true) ON CONFLICT (id) DO NOTHING`,
      [principalId, opts.tenantId, [...ROLES], ['admins']],
    );
    await c.query(`INSERT INTO api_keys (id, prefix, secret_hash, principal_id, tenant_id, name) VALUES ($1, $2, $3, $4, $5, 'bootstrap')`, [
      key.id, key.prefix, key.secretHash, principalId, opts.tenantId,
    ]);
  });
  mkdirSync(path.dirname(opts.keyFile), { recursive: true });
  writeFileSync(opts.keyFile, `${key.token}\n`, { mode: 0o600 });
  return { token: key.token, created: true };
}
