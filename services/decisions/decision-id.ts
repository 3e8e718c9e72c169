import { createHash, randomBytes } from 'node:crypto';

/**
 * A decision id is derived from (tenant, idempotency key) when there is a key, so a retry names the same
 * run and the same workflow; otherwise it is random. Not a secret: reading a decision still needs a key
 * of its tenant. (Kept apart from ids.ts, which workflow code imports and must stay free of node:crypto.)
 */
export function decisionIdFor(tenantId: string, idempotencyKey: string | undefined): string {
  if (idempotencyKey === undefined) return `dec_${randomBytes(16).toString('hex')}`;
  return `dec_${createHash('sha256').update(`${tenantId}\u0000${idempotencyKey}`).digest('hex').slice(0, 32)}`;
}
