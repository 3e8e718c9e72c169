import { createHash, randomBytes } from 'node:crypto';

/**
 * A decision id is derived from (tenant, principal, idempotency key) when there is a key, so a retry by the
 * same principal names the same run and the same workflow, and another principal's equal key names another
 * run: one agent can neither read nor block another's decision through a key. Otherwise it is random. Not a
 * secret: reading a decision still needs a key of its tenant (and, for agents, to be the one that asked).
 * The parts are joined with `/`, which neither a tenant id nor a principal id can contain, so the key (the
 * only part that may) comes last. (Kept apart from ids.ts, which workflow code imports and must stay free of
 * node:crypto.)
 */
export function decisionIdFor(tenantId: string, principalId: string, idempotencyKey: string | undefined): string {
  if (idempotencyKey === undefined) return `dec_${randomBytes(16).toString('hex')}`;
  return `dec_${createHash('sha256').update(`${tenantId}/${principalId}/${idempotencyKey}`).digest('hex').slice(0, 32)}`;
}
