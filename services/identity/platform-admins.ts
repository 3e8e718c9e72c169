import { CreatePrincipalBody, type CreatePlatformAdminBody, type PlatformAdmin, type Role } from '../../schemas/identity.ts';
import { CountersignError } from '../errors.ts';
import { withSystem, type Db } from '../events/db.ts';
import { appendTenantEvents } from './tenant-stream.ts';
import { BOOTSTRAP_ROLES } from './bootstrap.ts';
import { createPrincipal, type Actor } from './members.ts';
import { getTenant } from './tenants.ts';

const requirePlatformAdmin = (isPlatformAdmin: boolean): void => {
  if (!isPlatformAdmin) throw new CountersignError('forbidden', 'requires a platform admin');
};

/**
 * Another platform admin, made by a platform admin: a person in an existing tenant (its home, where its key and
 * events live), with the bootstrap admin's roles there and the platform flag, and its key, shown once. A
 * platform change under `policy_four_eyes` needs a second platform admin; before this, only an operator's
 * first-start tooling could make one. A member like any other (createPrincipal: PrincipalCreated with
 * platform_admin, then ApiKeyCreated), by the platform admin who made it.
 */
export async function createPlatformAdmin(db: Db, body: CreatePlatformAdminBody, actor: Actor): Promise<{ principal_id: string; tenant_id: string; roles: Role[]; api_key: string }> {
  requirePlatformAdmin(actor.platformAdmin);
  if (!(await getTenant(db, body.tenant_id))) throw new CountersignError('not_found', `tenant ${body.tenant_id} not found`, { errors: [{ path: 'tenant_id', message: 'no such tenant' }] });
  const roles = [...BOOTSTRAP_ROLES];
  const member = CreatePrincipalBody.parse({ name: body.name, kind: 'person', roles, email: body.email, slack_user_id: body.slack_user_id, key_name: 'platform admin' });
  const created = await createPrincipal(db, body.tenant_id, member, actor, { platformAdmin: true });
  return { principal_id: created.id, tenant_id: body.tenant_id, roles, api_key: created.api_key };
}

/** Every platform admin, enabled or not, oldest first (there are few: no paging). */
export async function listPlatformAdmins(db: Db, actor: Actor): Promise<PlatformAdmin[]> {
  requirePlatformAdmin(actor.platformAdmin);
  const res = await withSystem(db, 'platform-admin', (c) => c.query<{ id: string; tenant_id: string; name: string; disabled: boolean; created_at: Date }>(
    'SELECT id, tenant_id, name, disabled_at IS NOT NULL AS disabled, created_at FROM principals WHERE platform_admin ORDER BY created_at, id LIMIT 1000',
  ));
  return res.rows.map((r) => ({ principal_id: r.id, tenant_id: r.tenant_id, name: r.name, disabled: r.disabled, created_at: r.created_at.toISOString() }));
}

/**
 * Takes the platform flag from a platform admin; it stays a member of its home tenant with its roles there
 * (disable it, or revoke its keys, to take those too). Never the last enabled one: the platform would have
 * nobody to make tenants, answer platform reviews or make another admin. Every enabled platform admin's row is
 * locked first, so two admins revoking each other at once cannot both succeed. PlatformAdminRevoked on the
 * home tenant's stream, in the same transaction; every API drops its cached keys on the row's change.
 */
export async function revokePlatformAdmin(db: Db, tenantId: string, principalId: string, actor: Actor): Promise<void> {
  requirePlatformAdmin(actor.platformAdmin);
  await withSystem(db, 'platform-admin', async (c) => {
    const enabled = await c.query<{ id: string; tenant_id: string }>('SELECT id, tenant_id FROM principals WHERE platform_admin AND disabled_at IS NULL ORDER BY tenant_id, id FOR UPDATE');
    // The caller's flag again, as the locked rows have it: one just revoked by a concurrent request revokes nobody.
    requirePlatformAdmin(enabled.rows.some((r) => r.id === actor.principalId));
    const target = await c.query<{ platform_admin: boolean }>('SELECT platform_admin FROM principals WHERE tenant_id = $1 AND id = $2 FOR UPDATE', [tenantId, principalId]);
    if (!target.rows[0]?.platform_admin) throw new CountersignError('not_found', `${principalId} of tenant ${tenantId} is not a platform admin`);
    if (enabled.rows.every((r) => r.tenant_id === tenantId && r.id === principalId)) {
      throw new CountersignError('conflict', `${principalId} is the last enabled platform admin: make another first (POST /v1/platform/admins)`);
    }
    await c.query('UPDATE principals SET platform_admin = false WHERE tenant_id = $1 AND id = $2', [tenantId, principalId]);
    await appendTenantEvents(c, tenantId, [{ type: 'PlatformAdminRevoked', data: { principal_id: principalId, by: actor.principalId } }]);
  });
}
