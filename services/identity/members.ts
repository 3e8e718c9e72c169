import { randomBytes } from 'node:crypto';
import type { CreatePrincipalBody, PrincipalView, Role, UpdatePrincipalBody } from '../../schemas/identity.ts';
import { CountersignError } from '../errors.ts';
import { withTenant, type Db } from '../events/db.ts';
import { generateApiKey } from './api-keys.ts';
import { keysetPage, type Keyset, type Page } from './keyset.ts';

export const newPrincipalId = () => `prn_${randomBytes(12).toString('hex')}`;

type PrincipalRow = {
  id: string; tenant_id: string; name: string; kind: 'person' | 'agent'; roles: Role[]; groups: string[]; email: string | null;
  slack_user_id: string | null; platform_admin: boolean; disabled_at: Date | null; created_at: Date; created_key: string;
};
const COLUMNS = 'id, tenant_id, name, kind, roles, groups, email, slack_user_id, platform_admin, disabled_at, created_at, created_at::text AS created_key';
export const principalView = (r: PrincipalRow): PrincipalView => ({
  id: r.id, tenant_id: r.tenant_id, name: r.name, kind: r.kind, roles: r.roles, groups: r.groups, email: r.email, slack_user_id: r.slack_user_id,
  platform_admin: r.platform_admin, disabled: r.disabled_at !== null, created_at: r.created_at.toISOString(),
});

const UNIQUE_VIOLATION = '23505';

/** Email and Slack user id each name one person per tenant (the channels find approvers by them). */
function uniqueConflict(err: unknown): unknown {
  const e = err as { code?: string; constraint?: string };
  if (e.code !== UNIQUE_VIOLATION) return err;
  const field = e.constraint === 'principals_tenant_email' ? 'email' : e.constraint === 'principals_tenant_slack' ? 'slack_user_id' : 'id';
  return new CountersignError('conflict', `another member of this tenant has this ${field}`, { errors: [{ path: field, message: 'already used in this tenant' }] });
}

export async function createPrincipal(db: Db, tenantId: string, body: CreatePrincipalBody): Promise<{ id: string; api_key: string; key_id: string }> {
  const id = newPrincipalId();
  const key = generateApiKey();
  try {
    await withTenant(db, tenantId, async (c) => {
      await c.query(
        `INSERT INTO principals (id, tenant_id, name, kind, roles, groups, email, slack_user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [id, tenantId, body.name, body.kind, body.roles, body.groups, body.email ?? null, body.slack_user_id ?? null],
      );
      await c.query(`INSERT INTO api_keys (id, prefix, secret_hash, principal_id, tenant_id, name, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
        key.id, key.prefix, key.secretHash, id, tenantId, body.key_name, body.expires_at ?? null,
      ]);
    });
  } catch (err) {
    throw uniqueConflict(err);
  }
  return { id, api_key: key.token, key_id: key.id };
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

export async function updatePrincipal(db: Db, tenantId: string, id: string, body: UpdatePrincipalBody): Promise<PrincipalView | null> {
  try {
    const res = await withTenant(db, tenantId, async (c) => {
      const current = await c.query<PrincipalRow>(`SELECT ${COLUMNS} FROM principals WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, [tenantId, id]);
      const row = current.rows[0];
      if (!row) return null;
      if (row.kind === 'agent' && ((body.email ?? null) !== null || (body.slack_user_id ?? null) !== null)) {
        throw new CountersignError('validation_failed', 'only people have an email or Slack user id', { errors: [{ path: body.email ? 'email' : 'slack_user_id', message: 'agents have none' }] });
      }
      return c.query<PrincipalRow>(
        `UPDATE principals SET name = $3, roles = $4, groups = $5, email = $6, slack_user_id = $7,
            disabled_at = CASE WHEN $8::boolean IS NULL THEN disabled_at WHEN $8 THEN coalesce(disabled_at, now()) ELSE NULL END
          WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
        [tenantId, id, body.name ?? row.name, body.roles ?? row.roles, body.groups ?? row.groups,
          body.email === undefined ? row.email : body.email, body.slack_user_id === undefined ? row.slack_user_id : body.slack_user_id, body.disabled ?? null],
      );
    });
    return res?.rows[0] ? principalView(res.rows[0]) : null;
  } catch (err) {
    throw uniqueConflict(err);
  }
}
