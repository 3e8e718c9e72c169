import type { PrincipalView } from '../../schemas/identity.ts';
import { withTenant, type Db } from '../events/db.ts';
import { PRINCIPAL_COLUMNS as COLUMNS, principalView } from './members.ts';

/**
 * The person behind a channel identity (a Slack user id, an email address) in one tenant, for the channels
 * that turn a click or a reply into an approval. Disabled members and agents are never returned.
 */
export async function findPerson(db: Db, tenantId: string, by: { slack_user_id: string } | { email: string }): Promise<PrincipalView | null> {
  const [column, value] = 'email' in by ? ['lower(email)', by.email.toLowerCase()] : ['slack_user_id', by.slack_user_id];
  const res = await withTenant(db, tenantId, (c) => c.query<Parameters<typeof principalView>[0]>(
    `SELECT ${COLUMNS} FROM principals WHERE tenant_id = $1 AND kind = 'person' AND disabled_at IS NULL AND ${column} = $2`,
    [tenantId, value],
  ));
  return res.rows[0] ? principalView(res.rows[0]) : null;
}

/** Members of an approver group of a tenant (people only, enabled), e.g. to notify them. */
export async function approversOf(db: Db, tenantId: string, group: string): Promise<PrincipalView[]> {
  const res = await withTenant(db, tenantId, (c) => c.query<Parameters<typeof principalView>[0]>(
    `SELECT ${COLUMNS} FROM principals WHERE tenant_id = $1 AND kind = 'person' AND disabled_at IS NULL AND 'approver' = ANY(roles) AND $2 = ANY(groups) ORDER BY created_at, id`,
    [tenantId, group],
  ));
  return res.rows.map(principalView);
}
