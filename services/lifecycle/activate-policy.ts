import type { EventData } from '../../schemas/events.ts';
import { CountersignError } from '../errors.ts';
import { appendToStream } from '../events/append-to-stream.ts';
import { withTenant, type Db } from '../events/db.ts';
import { readStream } from '../events/read-events.ts';
import { compilePolicyVersion, activationSigned, frozenPolicy } from './policy-version.ts';
import type { CompiledPolicy } from '../policy/index.ts';
import type { Keyring } from '../receipts/keyring.ts';
import { signDocument } from '../receipts/sign.ts';
import { canonicalJson, sha256Digest } from '../receipts/canonical.ts';
import { policyStreamId } from '../events/stream-ids.ts';

export { policyStreamId } from '../events/stream-ids.ts';

/**
 * Activates a policy document as its next version: compiled, hashed, signed, and recorded as PolicyActivated
 * carrying the compiled policy (so the auditor can re-evaluate from the log alone). Activating the document
 * that is already the active version changes nothing (idempotent seeding).
 */
export async function activatePolicy(
  db: Db,
  keyring: Keyring,
  opts: { tenantId: string; document: Record<string, unknown>; actor: string; now?: Date },
): Promise<{ policy_id: string; version: number; hash: string; signature: string; signing_key_id: string; unchanged: boolean }> {
  const probe = compilePolicyVersion(opts.document, 1);
  if (!probe.ok) throw new CountersignError('validation_failed', 'policy does not compile', { errors: probe.errors });
  const streamId = policyStreamId(opts.tenantId, probe.policy.policy_id);
  const history = await withTenant(db, opts.tenantId, (c) => readStream(c, streamId));
  const activations = history.filter((e) => e.type === 'PolicyActivated').map((e) => e.data as EventData<'PolicyActivated'>);
  const last = activations[activations.length - 1];
  // Canonical form: jsonb does not keep key order, so a plain JSON.stringify comparison would always differ.
  if (last && canonicalJson(last.document) === canonicalJson(opts.document)) {
    return { policy_id: last.policy_id, version: last.version, hash: last.hash, signature: last.signature ?? '', signing_key_id: last.signing_key_id ?? '', unchanged: true };
  }
  const version = (last?.version ?? 0) + 1;
  const data = signedActivation(keyring, { document: opts.document, version, actor: opts.actor });
  await appendToStream(db, {
    streamId,
    tenantId: opts.tenantId,
    expectedVersion: history.length,
    recordedAt: opts.now ?? new Date(),
    events: [{ type: 'PolicyActivated', eventId: `${streamId}/${history.length + 1}`, data }],
  });
  return { policy_id: data.policy_id, version, hash: data.hash, signature: data.signature ?? '', signing_key_id: data.signing_key_id ?? '', unchanged: false };
}

/**
 * A document compiled as `version`, hashed and signed: the data of its PolicyActivated event. A rollback passes
 * the earlier version's frozen compiled policy, which is re-activated as it was (renumbered), never recompiled.
 */
export function signedActivation(
  keyring: Keyring,
  opts: { document: Record<string, unknown>; version: number; actor: string; frozen?: { snapshot: Record<string, unknown>; hash: string; policy_id: string; version: number } },
): EventData<'PolicyActivated'> {
  let policy: CompiledPolicy;
  if (opts.frozen !== undefined) {
    const f = frozenPolicy(opts.frozen);
    if (!f.ok) throw new CountersignError('validation_failed', f.problem);
    policy = { ...f.policy, version: opts.version };
  } else {
    const compiled = compilePolicyVersion(opts.document, opts.version);
    if (!compiled.ok) throw new CountersignError('validation_failed', 'policy does not compile', { errors: compiled.errors });
    policy = compiled.policy;
  }
  const scope = (opts.document['scope'] as Record<string, unknown> | undefined) ?? { level: 'tenant' };
  const snapshot = JSON.parse(JSON.stringify(policy)) as Record<string, unknown>;
  const unsigned = {
    policy_id: policy.policy_id,
    version: opts.version,
    scope,
    document: opts.document,
    snapshot,
    hash: sha256Digest(snapshot),
    document_hash: sha256Digest(opts.document),
    activated_by: opts.actor,
  };
  const sig = signDocument(activationSigned(unsigned), keyring);
  return { ...unsigned, signature: sig.value, signing_key_id: sig.key_id };
}
