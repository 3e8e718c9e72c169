import { withTenant, type Db } from '../services/events/db.ts';
import { verifyAttestation } from '../services/decisions/attestation.ts';
import type { AuthorizeInput, AuthorizeResult } from './types.ts';

const PRINCIPAL_FIELD: Record<string, string> = { answer: 'approver_id', override: 'requested_by', outcome: 'reported_by' };

/**
 * Vouches for a message sent into a decision workflow: it must carry the API's attestation, and the principal
 * it names must exist in that tenant now. Returns the principal's roles and groups as the database has them,
 * so a revoked membership stops counting at once. Read-only, so retries are harmless.
 */
export function makeAuthorize(db: Db, secret: () => Buffer) {
  return async function authorize(input: AuthorizeInput): Promise<AuthorizeResult> {
    const att = verifyAttestation(secret(), input, new Date());
    if (!att.ok) return att;
    const field = PRINCIPAL_FIELD[input.kind];
    const principalId = field ? input[field] : undefined;
    if (typeof principalId !== 'string') return { ok: false, reason: `unknown message kind ${input.kind}` };
    const res = await withTenant(db, input.tenant_id, (c) =>
      c.query<{ roles: string[]; groups: string[] }>('SELECT roles, groups FROM principals WHERE id = $1 AND tenant_id = $2', [principalId, input.tenant_id]),
    );
    const row = res.rows[0];
    if (!row) return { ok: false, reason: 'the principal does not exist in this tenant' };
    return { ok: true, principal_id: principalId, roles: row.roles, groups: row.groups };
  };
}
