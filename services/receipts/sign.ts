import { Receipt } from '../../schemas/receipt.ts';
import type { DocumentSignature, SignedReceipt } from '../../schemas/receipt.ts';
import { canonicalJson } from './canonical.ts';
import type { Keyring } from './keyring.ts';

/**
 * One signing mechanism for every signed thing (receipts, policy activations, exports): Ed25519
 * with the keyring's active key over the RFC 8785 canonical JSON of the document. Canonical form
 * makes the signature independent of key order and whitespace, so anyone holding the document as
 * JSON can re-derive the signed bytes.
 */
export function signDocument(doc: unknown, keyring: Keyring): DocumentSignature {
  return keyring.sign(Buffer.from(canonicalJson(doc), 'utf8'));
}

/**
 * Sign a receipt. A receipt that does not match the schema is refused (ZodError naming the field):
 * signing garbage would give it an authority it must not have.
 *
 * The receipt returned is the canonical JSON parsed back: a plain JSON value (no undefined
 * members) whose keys are in canonical order, so `JSON.stringify(signed.receipt)` is exactly the
 * bytes that were signed.
 */
export function signReceipt(receipt: Receipt, keyring: Keyring): SignedReceipt {
  const canonical = canonicalJson(Receipt.parse(receipt));
  const plain = JSON.parse(canonical) as Receipt;
  return { receipt: plain, signature: keyring.sign(Buffer.from(canonical, 'utf8')) };
}
