import { z } from 'zod';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { EventData } from '../../../schemas/events.ts';
import { PublicKeySet, SignedReceipt } from '../../../schemas/receipt.ts';
import { runStreamId } from '../../events/stream-ids.ts';
import { CountersignError } from '../../errors.ts';
import { withTenant } from '../../events/db.ts';
import { readStream } from '../../events/read-events.ts';
import { asSigned, buildReceipt } from '../../receipts/build-receipt.ts';
import { loadPublicKeys } from '../../receipts/keyring.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';
import { readsOnlyOwn } from '../../identity/agent-binding.ts';

const Problem = z.looseObject({ type: z.string(), title: z.string(), status: z.number(), code: z.string(), detail: z.string() });
const DecisionIdParams = z.strictObject({ id: z.string().regex(/^dec_[0-9a-f]{32}$/, 'decision ids look like dec_<32 hex>') });

/**
 * Receipts and the keys that verify them.
 *
 * GET /v1/keys is public on purpose: anyone holding a receipt must be able to verify it offline. It is read
 * from the keyring directory on every request, so a rotation (or a revocation) shows at once; retired keys
 * stay listed, which keeps old receipts verifiable.
 *
 * GET /v1/decisions/{id}/receipt rebuilds the receipt from the run's events with the same fold the worker
 * signed (never a stored copy that could drift) and attaches the signature recorded in ReceiptIssued.
 */
export function registerReceiptRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/v1/keys', {
    schema: { tags: ['receipts'], summary: 'The public keys that verify receipts and policy signatures', security: [], response: { 200: PublicKeySet, 503: Problem } },
  }, async () => {
    try {
      return await loadPublicKeys(deps.config.keysDir);
    } catch (err) {
      throw new CountersignError('dependency_unavailable', 'the keyring cannot be read', { extra: { dependency: 'keyring' }, cause: err });
    }
  });

  r.get('/v1/decisions/:id/receipt', {
    onRequest: authenticated(deps, []),
    schema: {
      tags: ['receipts'],
      summary: "The run's signed receipt (404 for an unknown run; 409 while it has none yet)",
      params: DecisionIdParams,
      response: { 200: SignedReceipt, 401: Problem, 404: Problem, 409: Problem, 503: Problem },
    },
  }, async (req) => {
    const principal = principalOf(req);
    const id = req.params.id;
    // Row-level security shows only this tenant's rows: another tenant's run is simply not found.
    const events = await withTenant(deps.db, principal.tenant_id, (c) => readStream(c, runStreamId(id)));
    if (events.length === 0 || events[0]!.tenant_id !== principal.tenant_id) throw new CountersignError('not_found', `decision ${id} not found`);
    // An agent reads only the receipts of runs it asked for: another's is "not found".
    if (readsOnlyOwn(principal) && (events[0]!.data as EventData<'DecisionRequested'>).requested_by !== principal.id) throw new CountersignError('not_found', `decision ${id} not found`);
    const issued = events.filter((e) => e.type === 'ReceiptIssued').pop();
    if (!issued) throw new CountersignError('conflict', `decision ${id} has no receipt yet: it is signed when the run is final`, { extra: { decision_id: id } });
    const d = issued.data as EventData<'ReceiptIssued'>;
    const rebuilt = buildReceipt(events.filter((e) => e.stream_version <= d.head_version));
    const receipt = rebuilt && asSigned(rebuilt, d.receipt_digest);
    if (!receipt) {
      // The log no longer rebuilds what was signed: never hand out a receipt that would not verify.
      req.log.error({ decision_id: id }, 'receipt does not rebuild from the log');
      throw new CountersignError('internal', `the receipt of ${id} does not rebuild from the log; run countersign audit replay`);
    }
    return { receipt, signature: d.signature };
  });
}
