import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/**
 * RFC 8785 (JCS) canonical JSON. Every hash and signature in Countersign is taken over this form,
 * so two processes (or an auditor years later) serialise the same value to the same bytes.
 */
export function canonicalJson(value: unknown): string {
  const out = canonicalize(value);
  if (out === undefined) throw new TypeError('value has no JSON form (undefined or a function)');
  return out;
}

/** `sha256:<hex>` over the canonical JSON of a value. */
export function sha256Digest(value: unknown): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(canonicalJson(value)).digest('hex')}`;
}
