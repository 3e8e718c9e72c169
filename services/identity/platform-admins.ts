import { CreatePrincipalBody, type CreatePlatformAdminBody, type Role } from '../../schemas/identity.ts';
import { CountersignError } from '../errors.ts';
import type { Db } from '../events/db.ts';
import { BOOTSTRAP_ROLES } from './bootstrap.ts';
import { createPrincipal, type Actor } from './members.ts';
import { getTenant } from './tenants.ts';

/**
 * Another platform admin, made by a platform admin: a person in an existing tenant (its home, where its key and
 * events live), with the bootstrap admin's roles there and the platform flag, and its key, shown once. A
 * platform change under `policy_four_eyes` needs a second platform admin; before this, only an operator's
 * first-start tooling could make one. A member like any other (createPrincipal: PrincipalCreated with
 * platform_admin, then ApiKeyCreated), by the platform admin who made it.
 */
export async function createPlatformAdmin(db: Db, body: CreatePlatformAdminBody, actor: Actor): Promise<{ principal_id: string; tenant_id: string; roles: Role[]; api_key: string }> {
  if (!actor.platformAdmin) throw new CountersignError('forbidden', 'requires a platform admin');
  if (!(await getTenant(db, body.tenant_id))) throw new CountersignError('not_found', `tenant ${body.tenant_id} not found`, { errors: [{ path: 'tenant_id', message: 'no such tenant' }] });
  const roles = [...BOOTSTRAP_ROLES];
  const member = CreatePrincipalBody.parse({ name: body.name, kind: 'person', roles, email: body.email, slack_user_id: body.slack_user_id, key_name: 'platform admin' });
  const created = await createPrincipal(db, body.tenant_id, member, actor, { platformAdmin: true });
  return { principal_id: created.id, tenant_id: body.tenant_id, roles, api_key: created.api_key };
}
