import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { EventData, NewEvent } from '../../schemas/events.ts';
import { appendInTransaction } from '../events/append-to-stream.ts';
import { tenantStreamId } from '../events/stream-ids.ts';

/**
 * Every change to who may do what in a tenant (members, roles, groups, disabling, agent permissions, API keys,
 * tenant settings, the judgment evaluator) is an event on the tenant's stream, appended in the same transaction as the table change,
 * so the publisher sends it to Kafka and `countersign audit replay` can say who could approve what, when.
 */
export { tenantStreamId };

/** Who made a change that no principal made: the bootstrap at first start. */
export const SYSTEM_ACTOR = 'system';

export type TenantEvent =
  | { type: 'TenantCreated'; data: EventData<'TenantCreated'> }
  | { type: 'TenantChanged'; data: EventData<'TenantChanged'> }
  | { type: 'PrincipalCreated'; data: EventData<'PrincipalCreated'> }
  | { type: 'PrincipalChanged'; data: EventData<'PrincipalChanged'> }
  | { type: 'PlatformAdminRevoked'; data: EventData<'PlatformAdminRevoked'> }
  | { type: 'ApiKeyCreated'; data: EventData<'ApiKeyCreated'> }
  | { type: 'ApiKeyRevoked'; data: EventData<'ApiKeyRevoked'> }
  | { type: 'DelegationGranted'; data: EventData<'DelegationGranted'> }
  | { type: 'DelegationRevoked'; data: EventData<'DelegationRevoked'> }
  | { type: 'EvaluatorChanged'; data: EventData<'EvaluatorChanged'> };

/** Appends inside the caller's transaction (which holds the table change): both commit, or neither. */
export async function appendTenantEvents(client: pg.PoolClient, tenantId: string, events: TenantEvent[], now = new Date()): Promise<void> {
  if (events.length === 0) return;
  const streamId = tenantStreamId(tenantId);
  // A change made through the API is not retried under the same id, so ids are random (unique by construction).
  const stamped: NewEvent[] = events.map((e) => ({ ...e, eventId: `${streamId}/${randomUUID()}` }));
  await appendInTransaction(client, { streamId, tenantId, expectedVersion: 'any', events: stamped, recordedAt: now });
}
