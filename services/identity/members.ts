import { randomBytes } from 'node:crypto';
import type { PrincipalAccess } from '../../schemas/events.ts';
import type { CreatePrincipalBody, PrincipalView, Role, UpdatePrincipalBody } from '../../schemas/identity.ts';
import { CountersignError } from '../errors.ts';
import { withTenant, type Db } from '../events/db.ts';
import { defaultAgentId } from './agent-binding.ts';
import { generateApiKey } from './api-keys.ts';
import { keysetPage, type Keyset, type Page } from './keyset.ts';
import { appendTenantEvents } from './tenant-stream.ts';

export const newPrincipalId = () => `prn_${randomBytes(12).toString('hex')}`;

type PrincipalRow = {
  id: string; tenant_id: string; name: string; kind: 'person' | 'agent'; roles: Role[]; groups: string[]; email: string | null;
  slack_user_id: string | null; platform_admin: boolean; agent_id: string | null; acts_for: string[]; disabled_at: Date | null; created_at: Date; created_key: string;
};
export const PRINCIPAL_COLUMNS = 'id, tenant_id, name, kind, roles, groups, email, slack_user_id, platform_admin, agent_id, acts_for, disabled_at, created_at, created_at::text AS created_key';
const COLUMNS = PRINCIPAL_COLUMNS;
export const principalView = (r: PrincipalRow): PrincipalView => ({
  id: r.id, tenant_id: r.tenant_id, name: r.name, kind: r.kind, roles: r.roles, groups: r.groups, email: r.email, slack_user_id: r.slack_user_id,
  platform_admin: r.platform_admin, agent_id: r.agent_id, acts_for: r.acts_for, disabled: r.disabled_at !== null, created_at: r.created_at.toISOString(),
});

/** What a principal may do, as the tenant's stream records it. */
const accessOf = (r: Pick<PrincipalRow, 'name' | 'roles' | 'groups' | 'disabled_at' | 'agent_id' | 'acts_for'>): PrincipalAccess => ({
  name: r.name, roles: r.roles, groups: r.groups, disabled: r.disabled_at !== null, agent_id: r.agent_id, acts_for: r.acts_for,
});

/** Who is making an identity change: recorded as `by`; only platform admins touch platform principals. */
export type Actor = { principalId: string; platformAdmin: boolean };
export const actorOf = (p: { id: string; platform_admin: boolean }): Actor => ({ principalId: p.id, platformAdmin: p.platform_admin });

const UNIQUE_VIOLATION = '23505';

/** Email and Slack user id each name one person per tenant (the channels find approvers by them). */
function uniqueConflict(err: unknown): unknown {
  const e = err as { code?: string; constraint?: string };
  if (e.code !== UNIQUE_VIOLATION) return err;
  const field = e.constraint === 'principals_tenant_email' ? 'email' : e.constraint === 'principals_tenant_slack' ? 'slack_user_id' : e.constraint === 'principals_tenant_agent' ? 'agent_id' : 'id';
  return new CountersignError('conflict', `another member of this tenant has this ${field}`, { errors: [{ path: field, message: 'already used in this tenant' }] });
}

/**
 * A new member and its first key, shown once. `platformAdmin` only from createPlatformAdmin (a platform admin
 * making another): no request body can set it.
 */
export async function createPrincipal(db: Db, tenantId: string, body: CreatePrincipalBody, actor: Actor, opts: { platformAdmin?: boolean } = {}): Promise<{ id: string; api_key: string; key_id: string; agent_id: string | null }> {
  const platformAdmin = opts.platformAdmin === true;
  const id = newPrincipalId();
  const key = generateApiKey();
  // Agents decide as their agent id: given, or their name made one (the principal id when nothing is left).
  const agentId = body.agent_id ?? (body.kind === 'agent' ? defaultAgentId(body.name) ?? id : null);
  try {
    await withTenant(db, tenantId, async (c) => {
      await c.query(
        `INSERT INTO principals (id, tenant_id, name, kind, roles, groups, email, slack_user_id, agent_id, acts_for, platform_admin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [id, tenantId, body.name, body.kind, body.roles, body.groups, body.email ?? null, body.slack_user_id ?? null, agentId, body.acts_for, platformAdmin],
      );
      const keyRow = await c.query<{ expires_at: Date | null }>(`INSERT INTO api_keys (id, prefix, secret_hash, principal_id, tenant_id, name, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING expires_at`, [
        key.id, key.prefix, key.secretHash, id, tenantId, body.key_name, body.expires_at ?? null,
      ]);
      await appendTenantEvents(c, tenantId, [
        { type: 'PrincipalCreated', data: { principal_id: id, kind: body.kind, platform_admin: platformAdmin, access: { name: body.name, roles: body.roles, groups: body.groups, disabled: false, agent_id: agentId, acts_for: body.acts_for }, by: actor.principalId } },
        { type: 'ApiKeyCreated', data: { key_id: key.id, prefix: key.prefix, principal_id: id, name: body.key_name, expires_at: keyRow.rows[0]!.expires_at?.toISOString() ?? null, by: actor.principalId } },
      ]);
    });
  } catch (err) {
    throw uniqueConflict(err);
  }
  return { id, api_key: key.token, key_id: key.id, agent_id: agentId };
}

export async function getPrincipal(db: Db, tenantId: string, id: string): Promise<PrincipalView | null> {
  const res = await withTenant(db, tenantId, (c) => c.query<PrincipalRow>(`SELECT ${COLUMNS} FROM principals WHERE tenant_id = $1 AND id = $2`, [tenantId, id]));
  return res.rows[0] ? principalView(res.rows[0]) : null;
}

export type PrincipalFilter = { role?: Role | undefined; group?: string | undefined; kind?: 'person' | 'agent' | undefined };

export async function listPrincipals(db: Db, tenantId: string, opts: { limit: number; after: Keyset | null } & PrincipalFilter): Promise<Page<PrincipalView>> {
  const res = await withTenant(db, tenantId, (c) => c.query<PrincipalRow>(
    `SELECT ${COLUMNS} FROM principals
      WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2::timestamptz, $3::text))
        AND ($4::text IS NULL OR $4 = ANY(roles)) AND ($5::text IS NULL OR $5 = ANY(groups)) AND ($6::text IS NULL OR kind = $6)
      ORDER BY created_at, id LIMIT $7`,
    [tenantId, opts.after?.t ?? null, opts.after?.id ?? '', opts.role ?? null, opts.group ?? null, opts.kind ?? null, opts.limit + 1],
  ));
  return keysetPage(res.rows, opts.limit, principalView);
}

export async function updatePrincipal(db: Db, tenantId: string, id: string, body: UpdatePrincipalBody, actor: Actor): Promise<PrincipalView | null> {
  try {
    const res = await withTenant(db, tenantId, async (c) => {
      const current = await c.query<PrincipalRow>(`SELECT ${COLUMNS} FROM principals WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, [tenantId, id]);
      const row = current.rows[0];
      if (!row) return null;
      if (row.platform_admin && !actor.platformAdmin) {
        throw new CountersignError('platform_principal', `${id} is a platform admin: only a platform admin may change it`);
      }
      if (row.kind === 'agent' && ((body.email ?? null) !== null || (body.slack_user_id ?? null) !== null)) {
        throw new CountersignError('validation_failed', 'only people have an email or Slack user id', { errors: [{ path: body.email ? 'email' : 'slack_user_id', message: 'agents have none' }] });
      }
      const updated = await c.query<PrincipalRow>(
        `UPDATE principals SET name = $3, roles = $4, groups = $5, email = $6, slack_user_id = $7,
            disabled_at = CASE WHEN $8::boolean IS NULL THEN disabled_at WHEN $8 THEN coalesce(disabled_at, now()) ELSE NULL END,
            agent_id = $9, acts_for = $10
          WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
        [tenantId, id, body.name ?? row.name, body.roles ?? row.roles, body.groups ?? row.groups,
          body.email === undefined ? row.email : body.email, body.slack_user_id === undefined ? row.slack_user_id : body.slack_user_id, body.disabled ?? null,
          body.agent_id === undefined ? row.agent_id : body.agent_id, body.acts_for ?? row.acts_for],
      );
      const after = updated.rows[0]!;
      const [b, a] = [accessOf(row), accessOf(after)];
      if (JSON.stringify(b) !== JSON.stringify(a)) {
        await appendTenantEvents(c, tenantId, [{ type: 'PrincipalChanged', data: { principal_id: id, before: b, after: a, by: actor.principalId } }]);
      }
      return after;
    });
    return res ? principalView(res) : null;
  } catch (err) {
    throw uniqueConflict(err);
  }
}
