import { createPublicKey, verify } from 'node:crypto';
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

function checkSignature(doc: unknown, signature: DocumentSignature, keys: PublicKeySet): VerifyResult {
  const entries = (Array.isArray(keys?.keys) ? keys.keys : []).filter((k: unknown) => isRecord(k) && k.kid === signature.key_id);
  if (entries.some((k) => isRecord(k) && k.status === 'revoked')) {
    return { ok: false, reason: 'key_revoked', detail: `key ${signature.key_id} is revoked` };
  }
  // A key set may come from a URL; a key whose id does not derive from its bytes is not trusted.
  const key = entries
    .map((k) => PublicSigningKey.safeParse(k))
    .find((p) => p.success && keyIdFor(Buffer.from(p.data.x, 'base64url')) === p.data.kid);
  if (!key?.success) {
    const why = entries.length > 0 ? ' (the entry is malformed or its id does not match its key)' : '';
    return { ok: false, reason: 'unknown_key', detail: `no public key ${signature.key_id} in the key set${why}` };
  }
  const status = key.data.status;
  if (status === 'revoked') return { ok: false, reason: 'key_revoked', detail: `key ${signature.key_id} is revoked` };

  const sig = Buffer.from(signature.value, 'base64url');
  // Node's base64url decoder skips junk and ignores trailing bits; insist on the one encoding.
  if (sig.length !== 64 || sig.toString('base64url') !== signature.value) {
    return { ok: false, reason: 'bad_signature', detail: 'signature.value is not a 64-byte Ed25519 signature in base64url', path: ['signature', 'value'] };
  }
  let bytes: Buffer;
  try {
    bytes = Buffer.from(canonicalJson(doc), 'utf8');
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: `document has no canonical JSON form: ${err instanceof Error ? err.message : String(err)}`, path: [] };
  }
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: key.data.x }, format: 'jwk' });
  if (!verify(null, bytes, publicKey, sig)) {
    return { ok: false, reason: 'bad_signature', detail: `signature does not match the document under key ${signature.key_id}` };
  }
  return { ok: true, key_id: signature.key_id, key_status: status };
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
