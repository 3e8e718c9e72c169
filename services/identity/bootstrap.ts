import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Db } from '../events/db.ts';
import { inTransaction } from '../events/db.ts';
import { generateApiKey } from './api-keys.ts';
import { authenticate } from './principals.ts';

/**
 * First start: the default tenant, a bootstrap principal (platform admin, and every role in the default
 * tenant) and its key, written once to a 0600 file. Later starts reuse the key while it still works.
 */
export async function ensureBootstrap(db: Db, opts: { tenantId: string; keyFile: string }): Promise<{ token: string; created: boolean }> {
  try {
    const existing = readFileSync(opts.keyFile, 'utf8').trim();
    if (existing && (await authenticate(db, existing, new Date()))) return { token: existing, created: false };
  } catch {
    // no file yet
  }
  const key = generateApiKey();
  await inTransaction(db, async (c) => {
    await c.query(`INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, [opts.tenantId, opts.tenantId]);
    await c.query(
      `INSERT INTO principals (id, tenant_id, name, kind, roles, groups, platform_admin)
       VALUES ($1, $2, 'bootstrap admin', 'person', $3, $4, true) ON CONFLICT (id) DO NOTHING`,
      [`prn_bootstrap_${opts.tenantId}`, opts.tenantId, ['agent', 'approver', 'author', 'admin', 'auditor'], ['admins']],
    );
    await c.query(`INSERT INTO api_keys (id, prefix, secret_hash, principal_id, tenant_id) VALUES ($1, $2, $3, $4, $5)`, [
      key.id, key.prefix, key.secretHash, `prn_bootstrap_${opts.tenantId}`, opts.tenantId,
    ]);
  });
  mkdirSync(path.dirname(opts.keyFile), { recursive: true });
  writeFileSync(opts.keyFile, `${key.token}\n`, { mode: 0o600 });
  return { token: key.token, created: true };
}
