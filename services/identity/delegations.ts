import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { z } from 'zod';
import { CountersignError } from '../errors.ts';
import { withTenant, type Db, type Queryable } from '../events/db.ts';
import { queryInTenant } from '../events/read-events.ts';
import type { ActiveDelegation } from '../decisions/delegation-rules.ts';
import type { Principal } from './principals.ts';
import { appendTenantEvents } from './tenant-stream.ts';

/**
 * Delegations ("out of office"): an approver names another member of the same approver group to answer for
 * them for a period. Rules, checked here with the rows locked: the delegator is an enabled person with the
 * approver role in that group; so is the delegate, who is someone else of the same tenant (never an agent, so
 * never the agent that asks); the period ends in the future and within MAX_DELEGATION_DAYS. Only the delegator
 * or an admin grants or revokes one. Each grant and revocation is an event on the tenant's stream, in the same
 * transaction as the row. At answer time the run checks again (services/decisions/delegation-rules.ts).
 */
export const MAX_DELEGATION_DAYS = 90;

export const DelegationBody = z.strictObject({
  to: z.string().min(1).max(200).describe('The principal id of the member who answers for you.'),
  group: z.string().min(1).max(200).describe('The approver group the delegation is for; both of you must be in it.'),
  from: z.string().min(1).max(200).optional().describe('Admins only: the member who is away (default: you).'),
  starts_at: z.iso.datetime({ offset: true }).optional().describe('Default: now.'),
  ends_at: z.iso.datetime({ offset: true }).describe(`When it ends; at most ${MAX_DELEGATION_DAYS} days from now.`),
});
export type DelegationBody = z.infer<typeof DelegationBody>;

export const DelegationView = z.strictObject({
  id: z.string(), from: z.string(), to: z.string(), group: z.string(), starts_at: z.string(), ends_at: z.string(),
  created_by: z.string(), created_at: z.string(), revoked_at: z.string().nullable(), status: z.enum(['scheduled', 'active', 'ended', 'revoked']),
});
export type DelegationView = z.infer<typeof DelegationView>;

type Row = { id: string; from_id: string; to_id: string; group_name: string; starts_at: Date; ends_at: Date; created_by: string; created_at: Date; revoked_at: Date | null };

const view = (r: Row, now: Date): DelegationView => ({
  id: r.id, from: r.from_id, to: r.to_id, group: r.group_name, starts_at: r.starts_at.toISOString(), ends_at: r.ends_at.toISOString(),
  created_by: r.created_by, created_at: r.created_at.toISOString(), revoked_at: r.revoked_at?.toISOString() ?? null,
  status: r.revoked_at ? 'revoked' : r.ends_at <= now ? 'ended' : r.starts_at > now ? 'scheduled' : 'active',
});

const invalid = (path: string, message: string) => new CountersignError('validation_failed', message, { errors: [{ path, message }] });

type Member = { id: string; kind: string; roles: string[]; groups: string[]; disabled: boolean; platform_admin: boolean };

async function member(c: pg.PoolClient, tenantId: string, id: string): Promise<Member | null> {
  const res = await c.query<Member>(
    'SELECT id, kind, roles, groups, disabled_at IS NOT NULL AS disabled, platform_admin FROM principals WHERE tenant_id = $1 AND id = $2 FOR SHARE',
    [tenantId, id],
  );
  return res.rows[0] ?? null;
}

/** Why this member may not take part in a delegation for this group, or null when it may. */
function unfit(m: Member | null, group: string, role: 'delegator' | 'delegate'): string | null {
  if (!m) return `the ${role} is not a member of this tenant`;
  if (m.disabled) return `the ${role} is disabled`;
  if (m.kind !== 'person') return `the ${role} must be a person: an agent never approves`;
  if (!m.roles.includes('approver')) return `the ${role} does not hold the approver role`;
  if (!m.groups.includes(group)) return `the ${role} is not in group ${group}`;
  return null;
}

export async function grantDelegation(db: Db, actor: Principal, body: DelegationBody, now: Date): Promise<DelegationView> {
  const from = body.from ?? actor.id;
  if (from !== actor.id && !actor.roles.includes('admin')) throw new CountersignError('forbidden', 'only admins delegate for another member');
  if (body.to === from) throw invalid('body.to', 'a delegate is someone else');
  const starts = body.starts_at ? new Date(body.starts_at) : now;
  const ends = new Date(body.ends_at);
  if (ends <= now) throw invalid('body.ends_at', 'ends_at must be in the future');
  if (ends <= starts) throw invalid('body.ends_at', 'ends_at must be after starts_at');
  if (ends.getTime() - now.getTime() > MAX_DELEGATION_DAYS * 86_400_000) throw invalid('body.ends_at', `a delegation lasts at most ${MAX_DELEGATION_DAYS} days from now`);
  return withTenant(db, actor.tenant_id, async (c) => {
    const delegator = unfit(await member(c, actor.tenant_id, from), body.group, 'delegator');
    if (delegator) throw invalid(body.from ? 'body.from' : 'body.group', delegator);
    const delegate = unfit(await member(c, actor.tenant_id, body.to), body.group, 'delegate');
    if (delegate) throw invalid('body.to', delegate);
    const id = `dlg_${randomBytes(12).toString('hex')}`;
    const res = await c.query<Row>(
      `INSERT INTO delegations (id, tenant_id, from_id, to_id, group_name, starts_at, ends_at, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       RETURNING id, from_id, to_id, group_name, starts_at, ends_at, created_by, created_at, revoked_at`,
      [id, actor.tenant_id, from, body.to, body.group, starts, ends, actor.id, now],
    );
    const r = res.rows[0]!;
    await appendTenantEvents(c, actor.tenant_id, [{
      type: 'DelegationGranted',
      data: { delegation_id: id, from, to: body.to, group: body.group, starts_at: r.starts_at.toISOString(), ends_at: r.ends_at.toISOString(), by: actor.id },
    }], now);
    return view(r, now);
  });
}

/** Revokes a delegation: its delegator or an admin. Idempotent: a second revocation records nothing new. */
export async function revokeDelegation(db: Db, actor: Principal, id: string, now: Date): Promise<DelegationView> {
  return withTenant(db, actor.tenant_id, async (c) => {
    const res = await c.query<Row>('SELECT id, from_id, to_id, group_name, starts_at, ends_at, created_by, created_at, revoked_at FROM delegations WHERE tenant_id = $1 AND id = $2 FOR UPDATE', [actor.tenant_id, id]);
    const r = res.rows[0];
    if (!r) throw new CountersignError('not_found', `delegation ${id} not found`);
    if (r.from_id !== actor.id && !actor.roles.includes('admin')) throw new CountersignError('forbidden', 'only the delegator or an admin revokes a delegation');
    if (r.revoked_at) return view(r, now);
    const upd = await c.query<Row>(
      'UPDATE delegations SET revoked_at = $3, revoked_by = $4 WHERE tenant_id = $1 AND id = $2 RETURNING id, from_id, to_id, group_name, starts_at, ends_at, created_by, created_at, revoked_at',
      [actor.tenant_id, id, now, actor.id],
    );
    await appendTenantEvents(c, actor.tenant_id, [{ type: 'DelegationRevoked', data: { delegation_id: id, from: r.from_id, to: r.to_id, group: r.group_name, by: actor.id } }], now);
    return view(upd.rows[0]!, now);
  });
}

/** Delegations from or to the caller; admins and auditors see the tenant's. Newest first, at most `limit`. */
export async function listDelegations(db: Db, actor: Principal, now: Date, limit = 200): Promise<DelegationView[]> {
  const all = actor.roles.includes('admin') || actor.roles.includes('auditor');
  const res = await withTenant(db, actor.tenant_id, (c) => c.query<Row>(
    `SELECT id, from_id, to_id, group_name, starts_at, ends_at, created_by, created_at, revoked_at FROM delegations
      WHERE tenant_id = $1 AND ($2 OR from_id = $3 OR to_id = $3) ORDER BY created_at DESC, id LIMIT $4`,
    [actor.tenant_id, all, actor.id, limit],
  ));
  return res.rows.map((r) => view(r, now));
}

/**
 * Delegations to a principal in force at `now`, from delegators who are still enabled approvers of the group
 * (a delegation never outlives the delegator's own right to answer). Read inside the caller's tenant scope.
 */
export async function activeDelegationsTo(c: Queryable, tenantId: string, principalId: string, now: Date): Promise<ActiveDelegation[]> {
  const res = await c.query<Row>(activeToSql('$1', '$2', '$3'), [tenantId, principalId, now]);
  return res.rows.map(activeDelegation);
}

/** activeDelegationsTo in the tenant's scope in one round trip (an answer's check, on the approver's critical path). */
export async function readActiveDelegationsTo(db: Db, tenantId: string, principalId: string, now: Date): Promise<ActiveDelegation[]> {
  const rows = await queryInTenant<Row>(db, tenantId, (lit) => activeToSql(lit(tenantId), lit(principalId), `${lit(now.toISOString())}::timestamptz`));
  return rows.map(activeDelegation);
}

/** The delegations in force to a principal: its values as placeholders or escaped literals. */
const activeToSql = (tenantId: string, principalId: string, now: string) => `SELECT d.id, d.from_id, d.to_id, d.group_name, d.starts_at, d.ends_at FROM delegations d
       JOIN principals p ON p.id = d.from_id AND p.tenant_id = d.tenant_id
      WHERE d.tenant_id = ${tenantId} AND d.to_id = ${principalId} AND d.revoked_at IS NULL AND d.starts_at <= ${now} AND d.ends_at > ${now}
        AND p.disabled_at IS NULL AND 'approver' = ANY(p.roles) AND d.group_name = ANY(p.groups)
      ORDER BY d.created_at, d.id`;

const activeDelegation = (r: Row): ActiveDelegation => ({ id: r.id, from: r.from_id, to: r.to_id, group: r.group_name, starts_at: r.starts_at.toISOString(), ends_at: r.ends_at.toISOString() });

/** Approvers of these groups who are away now: each has a delegation in force for one of the groups to an enabled member. */
export async function awayApprovers(c: Queryable, tenantId: string, groups: string[], now: Date): Promise<Map<string, string>> {
  const res = await c.query<{ from_id: string; to_id: string }>(
    `SELECT DISTINCT ON (d.from_id) d.from_id, d.to_id FROM delegations d
       JOIN principals t ON t.id = d.to_id AND t.tenant_id = d.tenant_id
      WHERE d.tenant_id = $1 AND d.group_name = ANY($2::text[]) AND d.revoked_at IS NULL AND d.starts_at <= $3 AND d.ends_at > $3
        AND t.disabled_at IS NULL AND 'approver' = ANY(t.roles) AND d.group_name = ANY(t.groups)
      ORDER BY d.from_id, d.created_at`,
    [tenantId, groups, now],
  );
  return new Map(res.rows.map((r) => [r.from_id, r.to_id]));
}
