import { withTenant, type Db } from '../services/events/db.ts';
import { verifyAttestation } from '../services/decisions/attestation.ts';
import { sha256Digest } from '../services/receipts/canonical.ts';
import type { PrincipalCache } from '../services/identity/key-cache.ts';
import type { AuthorizeInput, AuthorizeResult } from './types.ts';
import { readActiveDelegationsTo } from '../services/identity/delegations.ts';

const PRINCIPAL_FIELD: Record<string, string> = { answer: 'approver_id', override: 'requested_by', outcome: 'reported_by' };

/**
 * Vouches for a message sent into a decision workflow: it must carry the API's attestation, and the principal
 * it names must exist in that tenant now. Returns the principal's roles and groups as the database has them,
 * so a revoked membership stops counting. With a cache (the worker's), read once and dropped on every
 * principal change the moment its notification lands. Read-only, so retries are harmless.
 */
export function makeAuthorize(db: Db, secret: () => Buffer, cache?: PrincipalCache, refused: (kind: string, reason: string) => void = () => {}) {
  return async function authorize(input: AuthorizeInput): Promise<AuthorizeResult> {
    const res = await check(input);
    if (!res.ok) {
      try { refused(input.kind, res.reason); } catch { /* a metric never changes the answer */ }
    }
    return res;
  };

  async function check(input: AuthorizeInput): Promise<AuthorizeResult> {
    const att = verifyAttestation(secret(), input, new Date());
    if (!att.ok) return att;
    const edit = input['edit'] as { args?: unknown; args_digest?: unknown } | undefined;
    // Approve with edit: the approval is bound to the digest, so the digest must be the arguments' own.
    if (edit !== undefined && sha256Digest(edit.args ?? null) !== edit.args_digest) return { ok: false, reason: 'the edited arguments do not match their digest' };
    const field = PRINCIPAL_FIELD[input.kind];
    const principalId = field ? input[field] : undefined;
    if (typeof principalId !== 'string') return { ok: false, reason: `unknown message kind ${input.kind}` };
    const load = async () => (await withTenant(db, input.tenant_id, (c) =>
      c.query<{ roles: string[]; groups: string[]; disabled: boolean }>('SELECT roles, groups, disabled_at IS NOT NULL AS disabled FROM principals WHERE id = $1 AND tenant_id = $2', [principalId, input.tenant_id]),
    )).rows[0] ?? null;
    const row = cache ? await cache.get(input.tenant_id, principalId, load) : await load();
    if (!row) return { ok: false, reason: 'the principal does not exist in this tenant' };
    // Disabled after the API vouched for the message (a worker that was down, a slow queue): it no longer counts.
    if (row.disabled) return { ok: false, reason: 'the principal is disabled' };
    if (input.kind !== 'answer') return { ok: true, principal_id: principalId, roles: row.roles, groups: row.groups };
    // Delegations are read fresh for every answer (never cached): a revocation counts from the next answer on.
    const now = new Date();
    const delegations = await readActiveDelegationsTo(db, input.tenant_id, principalId, now);
    return { ok: true, principal_id: principalId, roles: row.roles, groups: row.groups, ...(delegations.length > 0 ? { delegations } : {}) };
  }
}
