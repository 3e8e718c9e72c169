import type { CreateTenantBody, Tenant, UpdateTenantBody } from '../../schemas/identity.ts';
import { CountersignError } from '../errors.ts';
import { withSystem, withTenant, type Db } from '../events/db.ts';
import { generateApiKey } from './api-keys.ts';
import { keysetPage, type Keyset, type Page } from './keyset.ts';
import { newPrincipalId, type Actor } from './members.ts';
import { appendTenantEvents } from './tenant-stream.ts';

type TenantRow = { id: string; name: string; default_decision: Tenant['default_decision']; settings: Tenant['settings']; created_at: Date; created_key: string };
const COLUMNS = 'id, name, default_decision, settings, created_at, created_at::text AS created_key';
const view = (r: TenantRow): Tenant => ({ id: r.id, name: r.name, default_decision: r.default_decision, settings: r.settings, created_at: r.created_at.toISOString() });
const configOf = (r: Pick<TenantRow, 'name' | 'default_decision' | 'settings'>) => ({ name: r.name, default_decision: r.default_decision, settings: r.settings });

const UNIQUE_VIOLATION = '23505';

/** A new tenant with its first admin (a person with the admin role) and that admin's key, shown once. */
export async function createTenant(db: Db, body: CreateTenantBody, actor: Actor): Promise<{ id: string; admin_principal_id: string; admin_api_key: string }> {
  const key = generateApiKey();
  const adminId = newPrincipalId();
  try {
    // The new tenant's own scope: row-level security accepts exactly its rows.
    await withTenant(db, body.id, async (c) => {
      await c.query('INSERT INTO tenants (id, name, default_decision, settings) VALUES ($1, $2, $3, $4)', [body.id, body.name, body.default_decision, JSON.stringify(body.settings)]);
      await c.query(
        `INSERT INTO principals (id, tenant_id, name, kind, roles, groups, email, slack_user_id) VALUES ($1, $2, $3, 'person', $4, '{}', $5, $6)`,
        [adminId, body.id, body.admin?.name ?? 'admin', ['admin'], body.admin?.email ?? null, body.admin?.slack_user_id ?? null],
      );
      await c.query(`INSERT INTO api_keys (id, prefix, secret_hash, principal_id, tenant_id, name) VALUES ($1, $2, $3, $4, $5, 'tenant admin')`, [key.id, key.prefix, key.secretHash, adminId, body.id]);
      const adminName = body.admin?.name ?? 'admin';
      await appendTenantEvents(c, body.id, [
        { type: 'TenantCreated', data: { tenant_id: body.id, config: configOf({ name: body.name, default_decision: body.default_decision, settings: body.settings }), by: actor.principalId } },
        { type: 'PrincipalCreated', data: { principal_id: adminId, kind: 'person', platform_admin: false, access: { name: adminName, roles: ['admin'], groups: [], disabled: false, agent_id: null, acts_for: [] }, by: actor.principalId } },
        { type: 'ApiKeyCreated', data: { key_id: key.id, prefix: key.prefix, principal_id: adminId, name: 'tenant admin', expires_at: null, by: actor.principalId } },
      ]);
    });
  } catch (err) {
    if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
      throw new CountersignError('conflict', `tenant ${body.id} already exists`, { errors: [{ path: 'id', message: 'already exists' }] });
    }
    throw err;
  }
  return { id: body.id, admin_principal_id: adminId, admin_api_key: key.token };
}

export async function getTenant(db: Db, tenantId: string): Promise<Tenant | null> {
  const res = await withTenant(db, tenantId, (c) => c.query<TenantRow>(`SELECT ${COLUMNS} FROM tenants WHERE id = $1`, [tenantId]));
  return res.rows[0] ? view(res.rows[0]) : null;
}

/** Every tenant: for platform admins only (the caller checks), hence the platform-admin system scope. */
export async function listTenants(db: Db, opts: { limit: number; after: Keyset | null }): Promise<Page<Tenant>> {
  const res = await withSystem(db, 'platform-admin', (c) => c.query<TenantRow>(
    `SELECT ${COLUMNS} FROM tenants WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1::timestamptz, $2::text)) ORDER BY created_at, id LIMIT $3`,
    [opts.after?.t ?? null, opts.after?.id ?? '', opts.limit + 1],
  ));
  return keysetPage(res.rows, opts.limit, view);
}

export async function updateTenant(db: Db, tenantId: string, body: UpdateTenantBody, actor: Actor): Promise<Tenant | null> {
  const row = await withTenant(db, tenantId, async (c) => {
    const cur = await c.query<TenantRow>(`SELECT ${COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE`, [tenantId]);
    if (!cur.rows[0]) return null;
    const res = await c.query<TenantRow>(
      `UPDATE tenants SET name = coalesce($2, name), default_decision = coalesce($3, default_decision), settings = coalesce($4::jsonb, settings)
        WHERE id = $1 RETURNING ${COLUMNS}`,
      [tenantId, body.name ?? null, body.default_decision ?? null, body.settings ? JSON.stringify(body.settings) : null],
    );
    const [before, after] = [configOf(cur.rows[0]), configOf(res.rows[0]!)];
    if (JSON.stringify(before) !== JSON.stringify(after)) {
      await appendTenantEvents(c, tenantId, [{ type: 'TenantChanged', data: { tenant_id: tenantId, before, after, by: actor.principalId } }]);
    }
    return res.rows[0]!;
  });
  return row ? view(row) : null;
}
