import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import { SignedReceipt } from '../../../schemas/receipt.ts';
import type { PublicKeySet, Receipt } from '../../../schemas/receipt.ts';
import { canonicalJson } from '../../../services/receipts/canonical.ts';
import { createInMemoryKeyring, keyIdFor } from '../../../services/receipts/keyring.ts';
import { signDocument, signReceipt } from '../../../services/receipts/sign.ts';
import { verifyDocument, verifyReceipt } from '../../../services/receipts/verify.ts';
import { reverseKeys, sampleReceipt } from './receipt-fixture.ts';

const keyring = createInMemoryKeyring(new Date('2025-01-01T00:00:00.000Z'));
const keys = keyring.publicKeys();

/** JSON round trip: what a verifier holds after reading a receipt from a file or the API. */
function asReceived<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function failure(result: ReturnType<typeof verifyReceipt>): { reason: string; detail: string; path?: (string | number)[] } {
  if (result.ok) throw new Error('expected verification to fail');
  return result;
}

describe('signReceipt / verifyReceipt', () => {
  it('round-trips: a signed receipt verifies against the keyring public keys', () => {
    const signed = signReceipt(sampleReceipt(), keyring);
    expect(SignedReceipt.parse(signed)).toEqual(signed);
    expect(signed.signature.alg).toBe('Ed25519');
    expect(signed.signature.key_id).toBe(keyring.activeKeyId);
    expect(signed.signature.value).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect(verifyReceipt(asReceived(signed), keys)).toEqual({ ok: true, key_id: keyring.activeKeyId, key_status: 'active' });
  });

  it('signs the RFC 8785 canonical JSON of the receipt, whatever the key order', () => {
    const receipt = sampleReceipt();
    const shuffled = reverseKeys(receipt);
    expect(JSON.stringify(shuffled)).not.toBe(JSON.stringify(receipt));
    const a = signReceipt(receipt, keyring);
    const b = signReceipt(shuffled, keyring);
    // Ed25519 is deterministic: same bytes, same key, same signature.
    expect(b.signature).toEqual(a.signature);
    // A verifier that holds the receipt with its keys in any order still verifies it.
    expect(verifyReceipt({ receipt: reverseKeys(asReceived(a.receipt)), signature: a.signature }, keys).ok).toBe(true);
    // And the signature is over exactly the canonical bytes, so any Ed25519 library can check it.
    expect(signDocument(receipt, keyring).value).toBe(a.signature.value);
    expect(canonicalJson(a.receipt)).toBe(canonicalJson(receipt));
  });

  it('returns a plain JSON receipt that stringifies to exactly the signed bytes', () => {
    const receipt = { ...sampleReceipt(), action: { tool: 'payment_tool', operation: undefined, args_digest: null } };
    const signed = signReceipt(receipt, keyring);
    expect(Object.keys(signed.receipt.action)).toEqual(['args_digest', 'tool']);
    expect(JSON.stringify(signed.receipt)).toBe(canonicalJson(receipt));
    expect(verifyReceipt(asReceived(signed), keys).ok).toBe(true);
  });

  it('refuses to sign a receipt that does not match the schema, naming the field', () => {
    const bad = { ...sampleReceipt(), request_digest: 'sha256:nothex' };
    expect(() => signReceipt(bad, keyring)).toThrow(ZodError);
    try {
      signReceipt(bad, keyring);
    } catch (err) {
      expect((err as ZodError).issues[0]?.path).toEqual(['request_digest']);
    }
    expect(() => signReceipt({ ...sampleReceipt(), extra: 1 } as Receipt, keyring)).toThrow(ZodError);
  });
});

describe('tampering is detected with the right reason', () => {
  const signed = asReceived(signReceipt(sampleReceipt(), keyring));

  it.each([
    ['decision', (r: Receipt) => ({ ...r, decision: 'ALLOW' as const })],
    ['decision_id (one character)', (r: Receipt) => ({ ...r, decision_id: r.decision_id.replace(/8$/, '9') })],
    ['head_hash (one hex digit)', (r: Receipt) => ({ ...r, head_hash: r.head_hash.replace(/.$/, (c) => (c === '0' ? '1' : '0')) })],
    ['a nested fact', (r: Receipt) => ({ ...r, facts: { ...r.facts, amount: 651 } })],
    ['an approver', (r: Receipt) => ({ ...r, approvals: [{ ...r.approvals[0]!, approver_id: 'prn_mallory' }] })],
    ['an approval removed', (r: Receipt) => ({ ...r, approvals: [] })],
    ['the outcome dropped', (r: Receipt) => ({ ...r, outcome: null })],
    ['an optional field removed', (r: Receipt) => ({ ...r, action: { ...r.action, topic: undefined } })],
    ['a constraint loosened', (r: Receipt) => ({ ...r, constraints: { max_runtime_sec: 6000 } })],
  ])('%s changed: bad_signature', (_name, mutate) => {
    const tampered = { receipt: asReceived(mutate(signed.receipt)), signature: signed.signature };
    expect(failure(verifyReceipt(tampered, keys)).reason).toBe('bad_signature');
  });

  it('one byte of the file changed in any string value fails verification', () => {
    const text = JSON.stringify(signed.receipt);
    let checked = 0;
    // Every position inside a string value: flip the character to another of the same class, so
    // most mutations keep the schema valid and must be caught by the signature itself.
    for (const m of text.matchAll(/:"([^"]+)"/g)) {
      const start = m.index + 2;
      for (let i = start; i < start + m[1]!.length; i += 1) {
        const c = text[i]!;
        const flipped = /[0-9]/.test(c) ? String((Number(c) + 1) % 10) : /[a-y]/.test(c) ? String.fromCharCode(c.charCodeAt(0) + 1) : null;
        if (flipped === null) continue;
        const mutated = JSON.parse(text.slice(0, i) + flipped + text.slice(i + 1)) as unknown;
        const result = verifyReceipt({ receipt: mutated, signature: signed.signature }, keys);
        expect(result.ok, `byte ${i} (${c} -> ${flipped})`).toBe(false);
        expect(['bad_signature', 'malformed']).toContain(failure(result).reason);
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThan(500);
  });

  it('signature replaced by the signature of another receipt: bad_signature', () => {
    const other = signReceipt(sampleReceipt({ decision_id: 'dec_other' }), keyring);
    expect(failure(verifyReceipt({ receipt: signed.receipt, signature: other.signature }, keys)).reason).toBe('bad_signature');
  });

  it('signature replaced by random bytes, or one bit of it flipped: bad_signature', () => {
    const random = Buffer.alloc(64, 7).toString('base64url');
    expect(failure(verifyReceipt({ ...signed, signature: { ...signed.signature, value: random } }, keys)).reason).toBe('bad_signature');
    const bytes = Buffer.from(signed.signature.value, 'base64url');
    bytes[10] = bytes[10]! ^ 1;
    const flipped = { ...signed, signature: { ...signed.signature, value: bytes.toString('base64url') } };
    expect(failure(verifyReceipt(flipped, keys)).reason).toBe('bad_signature');
  });

  it('a second encoding of the same signature bytes is refused (no malleable base64)', () => {
    // 64 bytes take 86 base64url characters; the low 4 bits of the last one carry nothing.
    const value = signed.signature.value;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(value.at(-1)!);
    const alias = value.slice(0, -1) + alphabet[last ^ 1]!;
    expect(Buffer.from(alias, 'base64url')).toEqual(Buffer.from(value, 'base64url'));
    expect(failure(verifyReceipt({ ...signed, signature: { ...signed.signature, value: alias } }, keys)).reason).toBe('bad_signature');
  });

  it('signed by a key that is not in the key set: unknown_key', () => {
    const stranger = createInMemoryKeyring();
    const forged = asReceived(signReceipt(signed.receipt, stranger));
    const result = failure(verifyReceipt(forged, keys));
    expect(result.reason).toBe('unknown_key');
    expect(result.detail).toContain(stranger.activeKeyId);
  });

  it('key id swapped to another published key: bad_signature', () => {
    const other = createInMemoryKeyring();
    const both: PublicKeySet = { keys: [...keys.keys, ...other.publicKeys().keys] };
    const swapped = { ...signed, signature: { ...signed.signature, key_id: other.activeKeyId } };
    expect(verifyReceipt(signed, both).ok).toBe(true);
    expect(failure(verifyReceipt(swapped, both)).reason).toBe('bad_signature');
  });

  it('key id swapped to a well-formed id nobody published: unknown_key', () => {
    const swapped = { ...signed, signature: { ...signed.signature, key_id: 'ed25519:0000000000000000' } };
    expect(failure(verifyReceipt(swapped, keys)).reason).toBe('unknown_key');
  });

  it.each(['RS256', 'EdDSA', 'none', 'ed25519'])('wrong alg %s: unsupported_alg', (alg) => {
    const result = failure(verifyReceipt({ ...signed, signature: { ...signed.signature, alg } }, keys));
    expect(result.reason).toBe('unsupported_alg');
    expect(result.path).toEqual(['signature', 'alg']);
  });

  it('a published key whose id does not derive from its bytes is not trusted', () => {
    const impostor = createInMemoryKeyring();
    const x = impostor.publicKeys().keys[0]!.x;
    // The attacker publishes their key under our key id and signs with it.
    const set: PublicKeySet = { keys: [{ ...keys.keys[0]!, x }] };
    const raw = impostor.sign(Buffer.from(canonicalJson(signed.receipt)));
    const forged = { receipt: signed.receipt, signature: { ...raw, key_id: keyring.activeKeyId } };
    expect(keyIdFor(Buffer.from(x, 'base64url'))).not.toBe(keyring.activeKeyId);
    expect(failure(verifyReceipt(forged, set)).reason).toBe('unknown_key');
  });

  it('a revoked key verifies nothing: key_revoked', () => {
    const revoked: PublicKeySet = { keys: keys.keys.map((k) => ({ ...k, status: 'revoked' as const })) };
    expect(failure(verifyReceipt(signed, revoked)).reason).toBe('key_revoked');
  });

  it('malformed receipts fail with the zod path', () => {
    const { decision_id: _dropped, ...missing } = signed.receipt;
    expect(failure(verifyReceipt({ receipt: missing, signature: signed.signature }, keys))).toMatchObject({
      reason: 'malformed',
      path: ['receipt', 'decision_id'],
    });
    const nested = { ...signed.receipt, approvals: [{ ...signed.receipt.approvals[0]!, channel: 'fax' }] };
    const result = failure(verifyReceipt({ receipt: nested, signature: signed.signature }, keys));
    expect(result).toMatchObject({ reason: 'malformed', path: ['receipt', 'approvals', 0, 'channel'] });
    expect(result.detail).toMatch(/^receipt\.approvals\[0\]\.channel: /);
    // An added field is refused rather than silently ignored: it was not what the signer signed.
    expect(failure(verifyReceipt({ receipt: { ...signed.receipt, approved: true }, signature: signed.signature }, keys)).path).toEqual(['receipt']);
    const { alg: _alg, ...noAlg } = signed.signature;
    expect(failure(verifyReceipt({ receipt: signed.receipt, signature: noAlg }, keys)).path).toEqual(['signature', 'alg']);
    expect(failure(verifyReceipt(null, keys)).reason).toBe('malformed');
    expect(failure(verifyReceipt('{"receipt":{}}', keys)).reason).toBe('malformed');
  });
});

describe('signDocument / verifyDocument', () => {
  const activation = { policy_id: 'refunds', version: 3, hash: `sha256:${createHash('sha256').update('x').digest('hex')}`, scope: { level: 'tenant' } };

  it('signs any JSON document with the same mechanism and verifies it offline', () => {
    const signature = signDocument(activation, keyring);
    expect(signature.key_id).toBe(keyring.activeKeyId);
    expect(verifyDocument(asReceived(reverseKeys(activation)), asReceived(signature), keys)).toEqual({
      ok: true,
      key_id: keyring.activeKeyId,
      key_status: 'active',
    });
  });

  it('detects a changed document, a foreign key and a foreign alg', () => {
    const signature = signDocument(activation, keyring);
    expect(verifyDocument({ ...activation, version: 4 }, signature, keys)).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(verifyDocument(activation, signDocument(activation, createInMemoryKeyring()), keys)).toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(verifyDocument(activation, { ...signature, alg: 'HS256' }, keys)).toMatchObject({ ok: false, reason: 'unsupported_alg', path: ['alg'] });
    expect(verifyDocument(activation, { ...signature, key_id: 'k1' }, keys)).toMatchObject({ ok: false, reason: 'malformed', path: ['key_id'] });
  });

  it('a document with no JSON form is malformed, not an exception', () => {
    const signature = signDocument(activation, keyring);
    expect(verifyDocument({ amount: Number.NaN }, signature, keys)).toMatchObject({ ok: false, reason: 'malformed' });
  });
});
