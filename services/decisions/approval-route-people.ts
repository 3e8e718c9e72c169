import { withTenant, type Db } from '../events/db.ts';
import { awayApprovers } from '../identity/delegations.ts';
import type { RouteRequirement } from './approval-requirements.ts';

/** A person who would be notified at a level, and how. */
export type RoutePerson = { principal_id: string; name: string; channels: Array<'dashboard' | 'slack' | 'email'>; on_behalf_of?: string[] };
export type PeopleRoute = Array<Omit<RouteRequirement, 'levels'> & { levels: Array<RouteRequirement['levels'][number] & { notified: RoutePerson[] }> }>;

/**
 * The people each level of an approval route would notify, as the notify activity would choose them now:
 * enabled approvers of the level's new groups, never the requester, an approver away under a delegation in force
 * replaced by their delegate. Channels: always the inbox (`dashboard`), Slack and email when the member has an
 * address for them and the deployment sends on that channel.
 */
export async function routePeople(db: Db, tenantId: string, route: RouteRequirement[], opts: { requester: string | null; slack: boolean; email: boolean; now: Date }): Promise<PeopleRoute> {
  const groups = [...new Set(route.flatMap((r) => r.levels.flatMap((l) => l.groups)))];
  const { rows, away } = await withTenant(db, tenantId, async (c) => ({
    rows: (await c.query<{ id: string; name: string; groups: string[]; email: string | null; slack_user_id: string | null }>(
      `SELECT id, name, groups, email, slack_user_id FROM principals WHERE tenant_id = $1 AND 'approver' = ANY(roles) AND groups && $2::text[] AND kind = 'person'
         AND disabled_at IS NULL ORDER BY id`,
      [tenantId, groups],
    )).rows,
    away: await awayApprovers(c, tenantId, groups, opts.now),
  }));
  const person = (r: (typeof rows)[number]): RoutePerson => ({
    principal_id: r.id, name: r.name,
    channels: ['dashboard', ...(opts.slack && r.slack_user_id ? ['slack' as const] : []), ...(opts.email && r.email ? ['email' as const] : [])],
  });
  return route.map((req) => ({
    ...req,
    levels: req.levels.map((l) => {
      const members = rows.filter((r) => r.id !== opts.requester && r.groups.some((g) => l.groups.includes(g)));
      const ids = new Set(members.map((m) => m.id));
      const notified = new Map<string, RoutePerson>();
      for (const m of members) {
        const to = away.get(m.id);
        if (to !== undefined && ids.has(to)) continue;
        notified.set(m.id, person(m));
      }
      for (const m of members) {
        const to = away.get(m.id);
        const p = to !== undefined ? notified.get(to) : undefined;
        if (p) p.on_behalf_of = [...(p.on_behalf_of ?? []), m.id];
      }
      return { ...l, notified: [...notified.values()] };
    }),
  }));
}
