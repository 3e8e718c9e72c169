import type { Decision } from '../../schemas/decision.ts';
import type { TenantSettings } from '../../schemas/identity.ts';
import { withTenant, type Db } from '../events/db.ts';
import { NotifiedCache } from '../events/listener.ts';
import type { LogFn } from '../logger.ts';
import { assembleEffective, type CompiledPolicy, type Snapshot } from '../policy/index.ts';
import { frozenPolicy } from '../lifecycle/policy-version.ts';
import { PLATFORM_SCOPE } from '../events/stream-ids.ts';

export type ActivePolicy = { policy_id: string; version: number; hash: string; scope: Record<string, unknown>; document: Record<string, unknown>; snapshot: Record<string, unknown>; platform?: true };
/** A policy version a run records: `scope: platform` marks a platform policy (a tenant may have its own of the same id). */
export type PolicyRef = { policy_id: string; version: number; hash: string; scope?: 'platform' };
export type EffectiveSet = {
  snapshot: Snapshot;
  policies: PolicyRef[];
  defaultDecision: Decision;
  /** The tenant's settings as they stand (its override settings among them); cached with the set, dropped on any tenant change. */
  settings?: TenantSettings;
};

export const policyRef = (p: ActivePolicy): PolicyRef => ({ policy_id: p.policy_id, version: p.version, hash: p.hash, ...(p.platform ? { scope: 'platform' as const } : {}) });

/**
 * The compiled effective policy set per (tenant, agent), cached and rebuilt when a policy event lands
 * (Postgres LISTEN/NOTIFY from a trigger on the log). While the listener is down, nothing is cached, so a
 * lost notification can never leave a stale snapshot deciding.
 */
export class ActivePolicies {
  private readonly cache: NotifiedCache<EffectiveSet>;

  constructor(private readonly db: Db, url: string, log: LogFn) {
    // A tenant's change drops its agents' sets; a platform change drops every set.
    this.cache = new NotifiedCache({ url, channel: 'policy_changed', log, drops: (tenant, key) => tenant === PLATFORM_SCOPE || key.startsWith(`${tenant}\u0000`) });
  }

  start(): Promise<void> {
    return this.cache.start();
  }

  stop(): Promise<void> {
    return this.cache.stop();
  }

  effective(tenantId: string, agentId: string): Promise<EffectiveSet> {
    return this.cache.get(`${tenantId}\u0000${agentId}`, () => this.load(tenantId, agentId));
  }

  /**
   * Latest active version of every policy that applies to this agent of this tenant: the platform's active
   * policies (streams `platform/policy/<id>`, which apply to every tenant and which no tenant can bind, change
   * or deprecate) and the tenant's own. A deprecated policy
   * (PolicyDeprecated after its last PolicyActivated) is out. A tenant policy bound to agents
   * (POST /v1/agents/{id}/binding) applies only to the agents bound to it; with agentId null, all are listed.
   * (The binding filters membership instead of passing PolicySource.agents: runs record only policy id and
   * version, and snapshotForRun/audit replay rebuild the snapshot hash from those alone.)
   */
  async activePolicies(tenantId: string, agentId: string | null): Promise<ActivePolicy[]> {
    const res = await withTenant(this.db, tenantId, (c) => c.query<{ tenant_id: string; type: string; data: ActivePolicy & { agent_id?: string } }>(
      `SELECT tenant_id, type, data FROM events WHERE tenant_id = ANY($1::text[])
         AND type IN ('PolicyActivated', 'PolicyDeprecated', 'PolicyBound', 'PolicyUnbound') ORDER BY position`,
      [[tenantId, PLATFORM_SCOPE]],
    ));
    const latest = new Map<string, ActivePolicy>();
    const bound = new Map<string, string>(); // agent -> policy id (this tenant's bindings only)
    for (const { tenant_id, type, data } of res.rows) {
      if (type === 'PolicyBound' || type === 'PolicyUnbound') {
        if (tenant_id !== tenantId || !data.agent_id) continue;
        if (type === 'PolicyBound') bound.set(data.agent_id, data.policy_id);
        else bound.delete(data.agent_id);
        continue;
      }
      if (type === 'PolicyDeprecated') {
        latest.delete(`${tenant_id}/${data.policy_id}`);
        continue;
      }
      const level = data.scope['level'];
      const platform = tenant_id === PLATFORM_SCOPE;
      // Only platform admins write platform streams, and only platform-level documents; a tenant's policy is
      // never platform-level (checkDocument). Either mismatch is not applied.
      if (platform !== (level === 'platform')) continue;
      if (level === 'agent' && (agentId === null || data.scope['agent'] !== agentId)) continue;
      latest.set(`${tenant_id}/${data.policy_id}`, platform ? { ...data, platform: true } : data);
    }
    const boundPolicies = new Set(bound.values());
    const mine = agentId === null ? undefined : bound.get(agentId);
    return [...latest.entries()]
      .filter(([key, p]) => agentId === null || !key.startsWith(`${tenantId}/`) || p.scope['level'] === 'agent' || !boundPolicies.has(p.policy_id) || p.policy_id === mine)
      .map(([, p]) => p);
  }

  private async load(tenantId: string, agentId: string): Promise<EffectiveSet> {
    const [policies, tenant] = await Promise.all([
      this.activePolicies(tenantId, agentId),
      withTenant(this.db, tenantId, (c) => c.query<{ default_decision: Decision; settings: TenantSettings | null }>('SELECT default_decision, settings FROM tenants WHERE id = $1', [tenantId])),
    ]);
    const defaultDecision = tenant.rows[0]?.default_decision ?? 'DENY';
    const settings = tenant.rows[0]?.settings ?? {};
    // The compiled policies frozen at activation evaluate; the documents are not compiled again.
    const frozen: CompiledPolicy[] = [];
    for (const p of policies) {
      const f = frozenPolicy(p);
      if (!f.ok) throw new Error(`active policies of ${tenantId}: ${f.problem}`);
      frozen.push(f.policy);
    }
    const snapshot = assembleEffective(frozen, { defaultDecision });
    return { snapshot, policies: policies.map(policyRef), defaultDecision, settings };
  }
}
