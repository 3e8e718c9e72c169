import type { CreatePlatformAdminBody, Role } from '../../schemas/identity.ts';
import { CountersignError } from '../errors.ts';
import { withTenant, type Db } from '../events/db.ts';
import { generateApiKey } from './api-keys.ts';
import { BOOTSTRAP_ROLES } from './bootstrap.ts';
import { newPrincipalId, uniqueConflict, type Actor } from './members.ts';
import { appendTenantEvents } from './tenant-stream.ts';

/**
 * Another platform admin, made by a platform admin: a person in an existing tenant (its home, where its key and
 * events live), with the bootstrap admin's roles there and the platform flag, and its key, shown once. A
 * platform change under `policy_four_eyes` needs a second platform admin; before this, only an operator's
 * first-start tooling could make one. Recorded as the bootstrap admin is (PrincipalCreated with
 * platform_admin, then ApiKeyCreated), by the platform admin who made it.
 */
export async function createPlatformAdmin(db: Db, body: CreatePlatformAdminBody, actor: Actor): Promise<{ principal_id: string; tenant_id: string; roles: Role[]; api_key: string }> {
  if (!actor.platformAdmin) throw new CountersignError('forbidden', 'requires a platform admin');
  const id = newPrincipalId();
  const key = generateApiKey();
  const roles = [...BOOTSTRAP_ROLES];
  try {
    await withTenant(db, body.tenant_id, async (c) => {
      const tenant = await c.query('SELECT 1 FROM tenants WHERE id = $1', [body.tenant_id]);
      if (tenant.rowCount === 0) throw new CountersignError('not_found', `tenant ${body.tenant_id} not found`, { errors: [{ path: 'tenant_id', message: 'no such tenant' }] });
      await c.query(
        `INSERT INTO principals (id, tenant_id, name, kind, roles, groups, email, slack_user_id, platform_admin) VALUES ($1, $2, $3, 'person', $4, '{}', $5, $6, true)`,
        [id, body.tenant_id, body.name, roles, body.email ?? null, body.slack_user_id ?? null],
      );
      await c.query(`INSERT INTO api_keys (id, prefix, secret_hash, principal_id, tenant_id, name) VALUES ($1, $2, $3, $4, $5, 'platform admin')`, [key.id, key.prefix, key.secretHash, id, body.tenant_id]);
      await appendTenantEvents(c, body.tenant_id, [
        { type: 'PrincipalCreated', data: { principal_id: id, kind: 'person', platform_admin: true, access: { name: body.name, roles, groups: [], disabled: false, agent_id: null, acts_for: [] }, by: actor.principalId } },
        { type: 'ApiKeyCreated', data: { key_id: key.id, prefix: key.prefix, principal_id: id, name: 'platform admin', expires_at: null, by: actor.principalId } },
      ]);
    });
  } catch (err) {
    throw uniqueConflict(err);
  }
  return { principal_id: id, tenant_id: body.tenant_id, roles, api_key: key.token };
}
