import { CountersignError } from '../errors.ts';
import { withTenant, type Db } from '../events/db.ts';
import { PLATFORM_SCOPE, policyStreamId, policyStreamPrefix } from '../events/stream-ids.ts';
import { loadPolicy } from './policy-lifecycle.ts';
import { foldPolicy, type PolicyEvent, type PolicyState } from './policy-store.ts';

/**
 * Platform policies as a tenant sees them. A platform policy (stream `platform/policy/<id>`, written only by
 * platform admins through /v1/platform/policies) applies to every tenant's decisions; a tenant reads its
 * activated versions (GET /v1/policies…, marked `scope: { level: platform }` and `read_only`) so it can see why
 * it was denied, never its drafts or reviews, and changes nothing of it: every write route of /v1/policies that
 * names it answers 403 `platform_policy`. A tenant's own policy of the same id (one made before the platform's)
 * is the one its routes act on.
 */

const SELECT = `SELECT type, data, to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS recorded_at, stream_version`;

/** What a tenant may see of a platform policy: its activated versions, nothing of drafts, reviews or who wrote them. */
export function tenantView(s: PolicyState): PolicyState {
  return {
    ...s,
    draft: null,
    review: null,
    versions: s.versions.map((v) => ({ ...v, activated_by: 'platform', ...(v.approved_by ? { approved_by: 'platform' } : {}) })),
    status: s.active_version !== null ? 'active' : 'deprecated',
  };
}

/** A platform policy with at least one activation, read in the tenant's own scope (row-level security lets it), as the tenant sees it. */
export async function visiblePlatformPolicy(db: Db, tenantId: string, policyId: string): Promise<PolicyState | null> {
  const res = await withTenant(db, tenantId, (c) => c.query<PolicyEvent>(
    `${SELECT} FROM events WHERE stream_id = $1 AND tenant_id = $2 ORDER BY stream_version`, [policyStreamId(PLATFORM_SCOPE, policyId), PLATFORM_SCOPE],
  ));
  const s = foldPolicy(policyId, res.rows);
  return s && s.versions.length > 0 ? tenantView(s) : null;
}

export async function visiblePlatformPolicies(db: Db, tenantId: string): Promise<PolicyState[]> {
  const prefix = policyStreamPrefix(PLATFORM_SCOPE);
  const res = await withTenant(db, tenantId, (c) => c.query<PolicyEvent & { stream_id: string }>(
    `${SELECT}, stream_id FROM events WHERE tenant_id = $1 AND left(stream_id, length($2)) = $2 ORDER BY stream_id, stream_version`, [PLATFORM_SCOPE, prefix],
  ));
  const byStream = new Map<string, PolicyEvent[]>();
  for (const r of res.rows) (byStream.get(r.stream_id) ?? byStream.set(r.stream_id, []).get(r.stream_id)!).push(r);
  const out: PolicyState[] = [];
  for (const [stream, events] of byStream) {
    const s = foldPolicy(stream.slice(prefix.length), events);
    if (s && s.versions.length > 0) out.push(tenantView(s));
  }
  return out;
}

/** The 403 a tenant gets for changing a platform policy, naming what it tried and who can. */
export function platformPolicyRefusal(policyId: string, what: string): CountersignError {
  return new CountersignError('platform_policy', `policy ${policyId} is a platform policy: it applies to every tenant, and only platform admins can ${what} it (/v1/platform/policies/${policyId})`, {
    extra: { policy_id: policyId, scope: 'platform' },
  });
}

/**
 * Refuses a tenant's change that names a platform policy: when the tenant has no policy of that id of its own
 * and the platform has an activated one. `what` says what was tried (edit, deprecate, roll back, …).
 */
export async function refusePlatformPolicy(db: Db, tenantId: string, policyId: string, what: string): Promise<void> {
  const own = await loadPolicy(db, tenantId, policyId);
  if (own && !own.deleted) return;
  if (await visiblePlatformPolicy(db, tenantId, policyId)) throw platformPolicyRefusal(policyId, what);
}
