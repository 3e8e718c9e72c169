import { withTenant, type Db } from '../events/db.ts';

/**
 * The Slack workspace (team id) a tenant is bound to (migration 0009). A team belongs to at most one tenant.
 * With a binding, clicks on the tenant's messages from any other team are refused and nothing is posted for
 * the tenant from a bot installed in another workspace. No secret is stored: the bot token and signing
 * secret stay in the configuration (COUNTERSIGN_SLACK_*).
 */
export async function boundSlackTeam(db: Db, tenantId: string): Promise<string | null> {
  const res = await withTenant(db, tenantId, (c) => c.query<{ team_id: string }>(`SELECT team_id FROM channel_slack_workspaces WHERE tenant_id = $1`, [tenantId]));
  return res.rows[0]?.team_id ?? null;
}

export type BindResult = { ok: true; team_id: string; bound_at: string } | { ok: false; reason: 'team_taken' };

/** Binds (or re-binds) a tenant to a Slack team. A team already bound to another tenant is refused. */
export async function bindSlackTeam(db: Db, tenantId: string, teamId: string, by: string): Promise<BindResult> {
  try {
    const res = await withTenant(db, tenantId, (c) => c.query<{ team_id: string; bound_at: Date }>(
      `INSERT INTO channel_slack_workspaces (tenant_id, team_id, bound_by) VALUES ($1, $2, $3)
       ON CONFLICT (tenant_id) DO UPDATE SET team_id = excluded.team_id, bound_by = excluded.bound_by, bound_at = now()
       RETURNING team_id, bound_at`,
      [tenantId, teamId, by],
    ));
    return { ok: true, team_id: res.rows[0]!.team_id, bound_at: res.rows[0]!.bound_at.toISOString() };
  } catch (err) {
    // The team is bound to another tenant (whose row RLS hides from us): unique violation on team_id.
    if ((err as { code?: string }).code === '23505') return { ok: false, reason: 'team_taken' };
    throw err;
  }
}
