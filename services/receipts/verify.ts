import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { z } from 'zod';
import { PublicSigningKey, DocumentSignature, SignedReceipt } from '../../schemas/receipt.ts';
import type { SigningKeyStatus, PublicKeySet } from '../../schemas/receipt.ts';
import { canonicalJson } from './canonical.ts';
import { keyIdFor } from './keyring.ts';

/**
 * Offline verification: needs only the signed document and the public key set (`GET /v1/keys`,
 * a JWKS file, or a keyring directory). Never throws on bad input: an auditor gets a reason.
 */

export type VerifyFailureReason =
  | 'malformed' // not a signed document of the expected shape; `path` names the field
  | 'unsupported_alg' // signature.alg is not Ed25519
  | 'unknown_key' // no usable public key with signature.key_id in the key set
  | 'key_revoked' // the key was revoked: nothing it signed is trusted any more
  | 'bad_signature'; // the bytes were altered, or the signature was made by another key

export type VerifyResult =
  | { ok: true; key_id: string; key_status: Exclude<SigningKeyStatus, 'revoked'> }
  | { ok: false; reason: VerifyFailureReason; detail: string; path?: (string | number)[] };

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, seg) => (typeof seg === 'number' ? `${out}[${seg}]` : out ? `${out}.${String(seg)}` : String(seg)), '');
}

function malformed(error: z.ZodError, prefix: (string | number)[]): VerifyResult {
  const issue = error.issues[0];
  const path = [...prefix, ...(issue?.path ?? []).map((p) => (typeof p === 'number' ? p : String(p)))];
  return { ok: false, reason: 'malformed', detail: `${formatPath(path) || '(root)'}: ${issue?.message ?? 'invalid'}`, path };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checked before the schema so a foreign algorithm gets its own reason, not a generic shape error. */
function foreignAlg(signature: unknown, prefix: string[]): VerifyResult | undefined {
  if (isRecord(signature) && typeof signature.alg === 'string' && signature.alg !== 'Ed25519') {
    const path = [...prefix, 'alg'];
    return { ok: false, reason: 'unsupported_alg', detail: `${formatPath(path)} is ${JSON.stringify(signature.alg)}; only Ed25519 is accepted`, path };
  }
  return undefined;
}

/**
 * A signature checked as far as it can be without the signed bytes: the key found in the set (trusted only if
 * its id derives from its bytes), not revoked, the value a well-formed 64-byte Ed25519 signature. What is
 * left is the Ed25519 check itself (ed25519Verify), which the auditor's replay runs on worker threads.
 */
export type PreparedSignature =
  | { ok: false; result: VerifyResult }
  | { ok: true; x: string; sig: Buffer; success: VerifyResult; failure: VerifyResult };

/** The trusted public key a key id names in a key set, or why there is none. */
export type KeyResolution = { ok: false; result: VerifyResult } | { ok: true; x: string; status: Exclude<SigningKeyStatus, 'revoked'> };

function resolveKey(keyId: string, keys: PublicKeySet): KeyResolution {
  const entries = (Array.isArray(keys?.keys) ? keys.keys : []).filter((k: unknown) => isRecord(k) && k.kid === keyId);
  if (entries.some((k) => isRecord(k) && k.status === 'revoked')) {
    return { ok: false, result: { ok: false, reason: 'key_revoked', detail: `key ${keyId} is revoked` } };
  }
  // A key set may come from a URL; a key whose id does not derive from its bytes is not trusted.
  const key = entries
    .map((k) => PublicSigningKey.safeParse(k))
    .find((p) => p.success && keyIdForX(p.data.x) === p.data.kid);
  if (!key?.success) {
    const why = entries.length > 0 ? ' (the entry is malformed or its id does not match its key)' : '';
    return { ok: false, result: { ok: false, reason: 'unknown_key', detail: `no public key ${keyId} in the key set${why}` } };
  }
  const status = key.data.status;
  if (status === 'revoked') return { ok: false, result: { ok: false, reason: 'key_revoked', detail: `key ${keyId} is revoked` } };
  return { ok: true, x: key.data.x, status };
}

/** `cache`: key resolutions by key id, for a caller that checks many signatures against one unchanging key set. */
function prepareSignature(signature: DocumentSignature, keys: PublicKeySet, cache?: Map<string, KeyResolution>): PreparedSignature {
  let key = cache?.get(signature.key_id);
  if (!key) {
    key = resolveKey(signature.key_id, keys);
    cache?.set(signature.key_id, key);
  }
  if (!key.ok) return key;
  const status = key.status;

  const sig = Buffer.from(signature.value, 'base64url');
  // Node's base64url decoder skips junk and ignores trailing bits; insist on the one encoding.
  if (sig.length !== 64 || sig.toString('base64url') !== signature.value) {
    return { ok: false, result: { ok: false, reason: 'bad_signature', detail: 'signature.value is not a 64-byte Ed25519 signature in base64url', path: ['signature', 'value'] } };
  }
  return {
    ok: true,
    x: key.x,
    sig,
    success: { ok: true, key_id: signature.key_id, key_status: status },
    failure: { ok: false, reason: 'bad_signature', detail: `signature does not match the document under key ${signature.key_id}` },
  };
}

/** Key ids and key objects are pure functions of the public key's bytes: computed once per key. */
const keyIds = new Map<string, string | null>();
function keyIdForX(x: string): string | null {
  let id = keyIds.get(x);
  if (id === undefined) {
    try {
      id = keyIdFor(Buffer.from(x, 'base64url'));
    } catch {
      id = null;
    }
    if (keyIds.size < 1000) keyIds.set(x, id);
  }
  return id;
}
const keyObjects = new Map<string, KeyObject>();

/** The Ed25519 check of `bytes` against a raw public key (`x`, base64url). */
export function ed25519Verify(x: string, bytes: Uint8Array, sig: Uint8Array): boolean {
  let key = keyObjects.get(x);
  if (!key) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    if (keyObjects.size < 1000) keyObjects.set(x, key);
  }
  return verify(null, bytes, key, sig);
}

function checkSignature(doc: unknown, signature: DocumentSignature, keys: PublicKeySet): VerifyResult {
  const prepared = prepareSignature(signature, keys);
  if (!prepared.ok) return prepared.result;
  let bytes: Buffer;
  try {
    bytes = Buffer.from(canonicalJson(doc), 'utf8');
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: `document has no canonical JSON form: ${err instanceof Error ? err.message : String(err)}`, path: [] };
  }
  return ed25519Verify(prepared.x, bytes, prepared.sig) ? prepared.success : prepared.failure;
}

/**
 * The first half of verifyDocument (everything but the Ed25519 check over the document's canonical bytes),
 * for a caller that already holds those bytes and runs the check itself (services/audit/replay.ts).
 */
export function prepareDocumentSignature(signature: unknown, keys: PublicKeySet, cache?: Map<string, KeyResolution>): PreparedSignature {
  const alg = foreignAlg(signature, []);
  if (alg) return { ok: false, result: alg };
  const parsed = DocumentSignature.safeParse(signature);
  if (!parsed.success) return { ok: false, result: malformed(parsed.error, []) };
  return prepareSignature(parsed.data, keys, cache);
}

/** Verify a signature made by signDocument over `doc` (policy activations, exports). */
export function verifyDocument(doc: unknown, signature: unknown, keys: PublicKeySet): VerifyResult {
  const alg = foreignAlg(signature, []);
  if (alg) return alg;
  const parsed = DocumentSignature.safeParse(signature);
  if (!parsed.success) return malformed(parsed.error, []);
  return checkSignature(doc, parsed.data, keys);
}

/**
 * Verify a signed receipt as received (e.g. JSON.parse of a file). The signature is checked over
 * the receipt exactly as given, not a re-parsed copy, so nothing the parser might drop or change
 * can slip past it.
 */
export function verifyReceipt(signed: unknown, keys: PublicKeySet): VerifyResult {
  const alg = foreignAlg(isRecord(signed) ? signed.signature : undefined, ['signature']);
  if (alg) return alg;
  const parsed = SignedReceipt.safeParse(signed);
  if (!parsed.success) return malformed(parsed.error, []);
  return checkSignature((signed as Record<string, unknown>).receipt, parsed.data.signature, keys);
}
