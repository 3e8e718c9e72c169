/**
 * Every stream id, composed and parsed in one place. Pure (no I/O, no Node built-ins): workflow code reaches
 * it through services/decisions/ids.ts.
 *
 * Parts are joined with `/`, which no part may contain (tenant, policy, agent and decision ids all exclude it:
 * schemas/identity.ts, schemas/policy.ts, schemas/decision.ts), so one id has exactly one reading. With `-`,
 * which ids do contain, tenant `acme` + policy `corp-refunds` and tenant `acme-corp` + policy `refunds` were
 * one stream: one tenant's draft blocked the other's, and the refusal told it the other's policy existed.
 *
 * | kind    | id                          | what it records                                  |
 * |---------|-----------------------------|--------------------------------------------------|
 * | run     | `run/<decision id>`         | one decision run (tenant in each event)          |
 * | policy  | `policy/<tenant>/<policy>`  | one policy's lifecycle                           |
 * | agent   | `agent/<tenant>/<agent>`    | one agent's binding and forced manifests         |
 * | catalog | `catalog/<tenant>`          | the tenant's tool catalog                        |
 * | tenant  | `tenant/<tenant>`           | the tenant's identity and settings changes       |
 * | platform policy | `platform/policy/<policy>` | one platform policy's lifecycle (every tenant) |
 * | platform settings | `platform/settings`      | the platform's policy settings (four-eyes)      |
 *
 * Events of the platform streams carry PLATFORM_SCOPE in the log's tenant column: a value outside the tenant
 * id grammar (schemas/identity.ts, and the tenants table's CHECK), so no tenant can ever own them.
 */

/** The owner of the platform streams, where the log records a tenant; no tenant id can take this form. */
export const PLATFORM_SCOPE = ':platform';

export const isPlatformScope = (owner: string): boolean => owner === PLATFORM_SCOPE;

export type StreamKind = 'run' | 'policy' | 'agent' | 'catalog' | 'tenant' | 'platform';

export type ParsedStreamId =
  | { kind: 'run'; decisionId: string }
  | { kind: 'policy'; tenantId: string; policyId: string }
  | { kind: 'agent'; tenantId: string; agentId: string }
  | { kind: 'catalog'; tenantId: string }
  | { kind: 'tenant'; tenantId: string }
  | { kind: 'platform-settings'; tenantId: typeof PLATFORM_SCOPE };

/** Thrown when a part would make an ambiguous id: a bug upstream (every boundary validates these ids). */
export class StreamIdError extends Error {
  override readonly name = 'StreamIdError';
}

const SEPARATOR = '/';

function part(what: string, value: string): string {
  if (value.length === 0 || value.includes(SEPARATOR)) throw new StreamIdError(`${what} ${JSON.stringify(value)} cannot be part of a stream id`);
  return value;
}

export const runStreamId = (decisionId: string): string => `run/${part('decision id', decisionId)}`;
/** A policy's stream: a tenant's (`policy/<tenant>/<policy>`), or the platform's when the owner is PLATFORM_SCOPE. */
export const policyStreamId = (owner: string, policyId: string): string =>
  (isPlatformScope(owner) ? `platform/policy/${part('policy id', policyId)}` : `policy/${part('tenant id', owner)}/${part('policy id', policyId)}`);
export const platformSettingsStreamId = 'platform/settings';
export const agentStreamId = (tenantId: string, agentId: string): string => `agent/${part('tenant id', tenantId)}/${part('agent id', agentId)}`;
export const catalogStreamId = (tenantId: string): string => `catalog/${part('tenant id', tenantId)}`;
export const tenantStreamId = (tenantId: string): string => `tenant/${part('tenant id', tenantId)}`;

/** The prefix every policy stream of one tenant starts with (listing a tenant's policies). */
export const policyStreamPrefix = (owner: string): string => (isPlatformScope(owner) ? 'platform/policy/' : `policy/${part('tenant id', owner)}/`);

const PARTS: Record<StreamKind, number> = { run: 1, policy: 2, agent: 2, catalog: 1, tenant: 1, platform: 2 };

/** The parts of a stream id, or null when it is not one this version writes. */
export function parseStreamId(id: string): ParsedStreamId | null {
  const [kind, ...rest] = id.split(SEPARATOR);
  if (kind === undefined || !Object.hasOwn(PARTS, kind)) return null;
  if (kind === 'platform' && id === platformSettingsStreamId) return { kind: 'platform-settings', tenantId: PLATFORM_SCOPE };
  if (rest.length !== PARTS[kind as StreamKind] || rest.some((p) => p.length === 0)) return null;
  switch (kind as StreamKind) {
    case 'run': return { kind: 'run', decisionId: rest[0]! };
    case 'policy': return { kind: 'policy', tenantId: rest[0]!, policyId: rest[1]! };
    case 'agent': return { kind: 'agent', tenantId: rest[0]!, agentId: rest[1]! };
    case 'catalog': return { kind: 'catalog', tenantId: rest[0]! };
    case 'tenant': return { kind: 'tenant', tenantId: rest[0]! };
    case 'platform': return rest[0] === 'policy' ? { kind: 'policy', tenantId: PLATFORM_SCOPE, policyId: rest[1]! } : null;
  }
}

/** The tenant a stream id names, when its kind names one (run streams do not: their events do). */
export const tenantOfStream = (p: ParsedStreamId): string | null => (p.kind === 'run' ? null : p.tenantId);

/**
 * Streams written before ids were composed with `/` used `-` (`run-<decision>`, `policy-<tenant>-<policy>`,
 * `agent-<tenant>-<agent>`, `catalog-<tenant>`); tenant streams never had that form. Migration 0014 renamed
 * the rows in Postgres, but kept their hashes, which cover the id they were appended under: this is that id.
 * Given the event's tenant (hashed too, and checked against the id's tenant by replay), it is unambiguous.
 */
export function legacyStreamId(id: string): string | null {
  const p = parseStreamId(id);
  // Platform streams were never written in the `-` form.
  if (!p || p.kind === 'tenant' || p.kind === 'platform-settings' || (p.kind !== 'run' && isPlatformScope(p.tenantId))) return null;
  return id.split(SEPARATOR).join('-');
}

/**
 * The current id of a stream read from a copy that no migration touched (a Kafka topic published before
 * migration 0014): `-` ids are mapped with the event's own tenant, exactly as migration 0014 maps the rows.
 * Ids already in the current form, and ids of no known form, are returned unchanged.
 */
export function currentStreamId(raw: string, tenantId: string): string {
  if (raw.includes(SEPARATOR)) return raw;
  if (raw.startsWith('run-') && raw.length > 4) return `run/${raw.slice(4)}`;
  if (raw === `catalog-${tenantId}`) return `catalog/${tenantId}`;
  for (const kind of ['policy', 'agent'] as const) {
    const prefix = `${kind}-${tenantId}-`;
    if (raw.startsWith(prefix) && raw.length > prefix.length) return `${kind}/${tenantId}/${raw.slice(prefix.length)}`;
  }
  return raw;
}
