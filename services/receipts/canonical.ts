import * as crypto from 'node:crypto';
import canonicalize from 'canonicalize';

/** Returned by the fast path when a value needs the reference implementation's handling. */
const BAIL = Symbol('bail');
/** Deeper than this, the fast path hands over (the reference implementation detects cycles). */
const MAX_DEPTH = 500;
/** String.prototype.isWellFormed (Node 20; the ES2023 lib in tsconfig does not declare it): no lone surrogates. */
const wellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/**
 * Object keys as the fast path writes them (`"key":`), by key. Events repeat a small vocabulary of keys; this
 * saves a JSON.stringify per key. Keyed on the key itself (exact code units); bounded in entries and in each
 * key's length, so hostile input (ever-new keys, or a request's arguments with huge keys, in a process that
 * lives for weeks) only stops filling it and never holds more than a few hundred KB.
 */
const KEY_JSON = new Map<string, string>();
const KEY_JSON_MAX = 4096;
const KEY_JSON_MAX_LENGTH = 64;

function keyJson(k: string): string | typeof BAIL {
  let j = KEY_JSON.get(k);
  if (j === undefined) {
    if (!wellFormed(k)) return BAIL;
    j = `${JSON.stringify(k)}:`;
    if (KEY_JSON.size < KEY_JSON_MAX && k.length <= KEY_JSON_MAX_LENGTH) KEY_JSON.set(k, j);
  }
  return j;
}

/** What the key cache holds (for tests of its bounds). */
export function keyCacheSize(): { entries: number; chars: number } {
  let chars = 0;
  for (const [k, j] of KEY_JSON) chars += k.length + j.length;
  return { entries: KEY_JSON.size, chars };
}

/**
 * Sorts an object's key list in place by UTF-16 code units (what `<` on strings compares, as does
 * Array.prototype.sort's default comparison). Array.prototype.sort allocates a work array on every call, which
 * over every object of every event of a log was a quarter of what the auditor's replay allocated; most key
 * lists are short and many already sorted, where insertion sort does no more than one pass. Long lists keep
 * the built-in sort (insertion sort is quadratic).
 */
function sortKeys(keys: string[]): void {
  const n = keys.length;
  if (n > 24) {
    keys.sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const k = keys[i]!;
    let j = i - 1;
    if (keys[j]! < k) continue;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
}

/**
 * The fast path of canonicalJson, for plain JSON data (what JSON.parse returns, what events and receipts are
 * made of): recursive, no cycle bookkeeping. Anything else (toJSON, class instances, boxed primitives,
 * undefined or functions, non-finite numbers, lone surrogates, bigint, very deep nesting) returns BAIL and the
 * whole value goes to the reference implementation, so output and errors are always the reference's.
 * Key order: by UTF-16 code units (sortKeys), which is what RFC 8785 asks.
 */
function fast(value: unknown, depth: number): string | typeof BAIL {
  switch (typeof value) {
    case 'string':
      return wellFormed(value) ? JSON.stringify(value) : BAIL;
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : BAIL;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (depth > MAX_DEPTH) return BAIL;
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (!(i in value)) return BAIL;
          const item = fast(value[i], depth + 1);
          if (item === BAIL) return BAIL;
          out = i === 0 ? out + item : out + ',' + item;
        }
        return out + ']';
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return BAIL;
      const obj = value as Record<string, unknown>;
      if (typeof obj['toJSON'] === 'function') return BAIL;
      const keys = Object.keys(obj);
      sortKeys(keys);
      let out = '{';
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        const kj = keyJson(k);
        if (kj === BAIL) return BAIL;
        const v = fast(obj[k], depth + 1);
        if (v === BAIL) return BAIL;
        out = i === 0 ? out + kj + v : out + ',' + kj + v;
      }
      return out + '}';
    }
    default:
      return BAIL;
  }
}

/**
 * RFC 8785 (JCS) canonical JSON. Every hash and signature in Countersign is taken over this form,
 * so two processes (or an auditor years later) serialise the same value to the same bytes.
 * Plain JSON data takes a fast path (the auditor canonicalises every event of the log); anything else, and
 * every error, is the `canonicalize` package's (test/unit/receipts/canonical.unit.test.ts compares the two).
 */
export function canonicalJson(value: unknown): string {
  const quick = fast(value, 0);
  if (quick !== BAIL) return quick;
  return referenceCanonicalJson(value);
}

/** The reference implementation (the `canonicalize` package), for tests and for values the fast path hands over. */
export function referenceCanonicalJson(value: unknown): string {
  const out = canonicalize(value);
  if (out === undefined) throw new TypeError('value has no JSON form (undefined or a function)');
  return out;
}

/**
 * crypto.hash (Node >= 20.12) digests in one call without a Hash object: about a third of createHash's cost on
 * an event-sized text, and the auditor's replay takes two or three digests per event. Older Node (engines
 * allows 20.11) keeps createHash; both encode a string as UTF-8.
 */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;

/** `sha256:<hex>` over a canonical JSON text. */
export function sha256OfCanonical(canonical: string): `sha256:${string}` {
  return `sha256:${oneShotHash ? oneShotHash('sha256', canonical, 'hex') : crypto.createHash('sha256').update(canonical).digest('hex')}`;
}

/** `sha256:<hex>` over the canonical JSON of a value. */
export function sha256Digest(value: unknown): `sha256:${string}` {
  return sha256OfCanonical(canonicalJson(value));
}
