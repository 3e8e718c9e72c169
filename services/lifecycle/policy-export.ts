import { z } from 'zod';
import { Sha256 } from '../../schemas/events.ts';
import type { PublicKeySet } from '../../schemas/receipt.ts';
import { fieldErrors, type FieldError } from '../errors.ts';
import type { Keyring } from '../receipts/keyring.ts';
import { signDocument } from '../receipts/sign.ts';
import { sha256Digest } from '../receipts/canonical.ts';
import { verifyDocument, type VerifyFailureReason } from '../receipts/verify.ts';
import type { ActivatedVersion } from './policy-store.ts';
import { compilePolicyVersion, frozenPolicy, isVersionHash } from './policy-version.ts';

/**
 * Signed policy export/import. An export is one activated version as JSON: its document, scope, the compiled
 * policy frozen at its activation (`snapshot`), that policy's hash and the document's, signed with Ed25519 by the keyring's
 * active key over the canonical JSON of everything but the signature itself. Checking one needs only the file
 * and the public keys (GET /v1/keys): the schema, the document and the frozen compiled policy against their
 * hashes, then the signature. The document is never compiled again to check an export, so a later change of the
 * natural-language grammar cannot make an intact export read as altered. The API, the CLI
 * (`policy validate --file`) and the import all use `verifyExport`, so they cannot disagree about what is intact.
 */
export const EXPORT_FORMAT = 'countersign.policy-export/v1';

export const PolicyExport = z.strictObject({
  format: z.literal(EXPORT_FORMAT),
  policy_id: z.string().min(1).max(128),
  version: z.number().int().positive(),
  scope: z.record(z.string(), z.unknown()),
  document: z.record(z.string(), z.unknown()),
  document_hash: Sha256.optional().describe('sha256 over the canonical JSON of the document (carried with `snapshot`).'),
  snapshot: z.record(z.string(), z.unknown()).optional().describe('The compiled policy frozen at activation, as PolicyActivated records it; what `hash` covers. Exports made before it was carried lack it (their document is compiled to check them).'),
  hash: Sha256.describe('sha256 over the canonical JSON of the compiled version, as PolicyActivated records it.'),
  exported_at: z.iso.datetime({ offset: true }),
  signing_key_id: z.string().min(1),
  signature: z.string().min(1).describe('Ed25519 (base64url) over the canonical JSON of every other field.'),
});
export type PolicyExport = z.infer<typeof PolicyExport>;

/** What the signature covers: the export without its signature (the frozen compiled policy too, when carried). */
export function exportSigned(e: Omit<PolicyExport, 'signature'>): Record<string, unknown> {
  const signed: Record<string, unknown> = { format: e.format, policy_id: e.policy_id, version: e.version, scope: e.scope, document: e.document, hash: e.hash, exported_at: e.exported_at, signing_key_id: e.signing_key_id };
  if (e.snapshot !== undefined) signed['snapshot'] = e.snapshot;
  if (e.document_hash !== undefined) signed['document_hash'] = e.document_hash;
  return signed;
}

export function exportVersion(keyring: Keyring, policyId: string, v: ActivatedVersion, now: Date): PolicyExport {
  const unsigned = {
    format: EXPORT_FORMAT, policy_id: policyId, version: v.version, scope: v.scope, document: v.document, document_hash: sha256Digest(v.document), snapshot: v.snapshot, hash: v.hash as `sha256:${string}`,
    exported_at: now.toISOString(), signing_key_id: keyring.activeKeyId,
  } as const;
  const sig = signDocument(exportSigned(unsigned), keyring);
  return { ...unsigned, signature: sig.value };
}

export type ExportProblem =
  | { ok: false; reason: 'malformed'; detail: string; errors: FieldError[] }
  | { ok: false; reason: 'hash_mismatch' | 'does_not_compile' | VerifyFailureReason; detail: string; errors?: FieldError[] };

/** Schema, then the hash recomputed from the document, then the signature against `keys`. Never throws. */
export function verifyExport(raw: unknown, keys: PublicKeySet): { ok: true; export: PolicyExport; key_id: string } | ExportProblem {
  const parsed = PolicyExport.safeParse(raw);
  if (!parsed.success) {
    const errors = fieldErrors(parsed.error.issues);
    return { ok: false, reason: 'malformed', detail: `not a policy export: ${errors[0]?.path}: ${errors[0]?.message}`, errors };
  }
  const e = parsed.data;
  if (e.document_hash !== undefined) {
    const documentHash = sha256Digest(e.document);
    if (documentHash !== e.document_hash) return { ok: false, reason: 'hash_mismatch', detail: `the document hashes to ${documentHash}, not the recorded ${e.document_hash}: the file was altered` };
  }
  if (e.snapshot !== undefined) {
    // The frozen compiled policy is what the hash (and PolicyActivated, and every run) names: check it as it
    // is, never a recompilation of the document by today's compiler.
    const f = frozenPolicy({ policy_id: e.policy_id, version: e.version, snapshot: e.snapshot, hash: e.hash });
    if (!f.ok) return { ok: false, reason: 'hash_mismatch', detail: `${f.problem}: the file was altered` };
  } else {
    const compiled = compilePolicyVersion(e.document, e.version);
    if (!compiled.ok) return { ok: false, reason: 'does_not_compile', detail: `the exported document does not compile: ${compiled.errors[0]?.path}: ${compiled.errors[0]?.message}`, errors: compiled.errors.map((x) => ({ path: `document.${x.path}`, message: x.message })) };
    if (compiled.policy.policy_id !== e.policy_id) return { ok: false, reason: 'hash_mismatch', detail: `policy_id is ${e.policy_id} but the document's metadata.id is ${compiled.policy.policy_id}: the file was altered` };
    if (!isVersionHash(compiled, e.hash)) return { ok: false, reason: 'hash_mismatch', detail: `the document hashes to ${compiled.hash}, not the recorded ${e.hash}: the file was altered` };
  }
  const { signature, ...rest } = e;
  const v = verifyDocument(exportSigned(rest), { alg: 'Ed25519', key_id: e.signing_key_id, value: signature }, keys);
  if (!v.ok) return { ok: false, reason: v.reason, detail: v.reason === 'unknown_key' ? `signed by ${e.signing_key_id}, which is not one of this deployment's keys` : v.detail };
  return { ok: true, export: e, key_id: v.key_id };
}
