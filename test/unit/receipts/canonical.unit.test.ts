import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { syntheticLog } from '../../../services/audit/synthetic-runs.ts';
import { canonicalJson, referenceCanonicalJson, sha256OfCanonical } from '../../../services/receipts/canonical.ts';
import { createInMemoryKeyring } from '../../../services/receipts/keyring.ts';

/** canonicalJson's fast path must give the reference implementation's bytes, and its errors, for every value. */
const same = (value: unknown) => {
  let expected: string | Error;
  try {
    expected = referenceCanonicalJson(value);
  } catch (err) {
    expected = err as Error;
  }
  if (expected instanceof Error) expect(() => canonicalJson(value)).toThrow(expected.message);
  else expect(canonicalJson(value)).toBe(expected);
};

describe('canonicalJson (RFC 8785) fast path', () => {
  it('matches the reference on every event and receipt of a synthetic log', () => {
    const log = syntheticLog(createInMemoryKeyring(), { tenantId: 'acme', runs: 40, tag: 'canonical', now: new Date('2024-05-01T12:00:00Z') });
    for (const e of log) same(JSON.parse(JSON.stringify(e)));
  });

  it('matches the reference on arbitrary JSON values (seeded)', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => same(v)), { seed: 4_2024, numRuns: 2000 });
    fc.assert(fc.property(fc.dictionary(fc.string({ unit: 'binary' }), fc.oneof(fc.double(), fc.string({ unit: 'binary' }), fc.integer())), (v) => same(v)), { seed: 7, numRuns: 1000 });
  });

  it('orders keys by UTF-16 code units and serialises numbers as ECMAScript does', () => {
    expect(canonicalJson({ '\u{1F600}': 1, '\uFB33': 2, b: [1e21, 1e-7, -0, 0.1 + 0.2], a: { z: null, y: true } }))
      .toBe('{"a":{"y":true,"z":null},"b":[1e+21,1e-7,0,0.30000000000000004],"\u{1F600}":1,"\uFB33":2}'); // U+1F600 is \uD83D\uDE00: before \uFB33
  });

  it('orders key lists of every length, in any order they come, as the reference does', () => {
    // Short lists are sorted by hand and long ones by Array.prototype.sort: both sides of the switch, each order.
    const alphabet = ['b', 'a', 'aa', 'A', '_', '10', '9', '\u00e9', '\u{1F600}', '\uFB33', 'z', ''];
    for (let n = 0; n <= 40; n++) {
      const keys = Array.from({ length: n }, (_, i) => `${alphabet[(i * 7) % alphabet.length]}${i % 3 === 0 ? i : ''}`);
      for (const order of [keys, [...keys].sort(), [...keys].sort().reverse()]) {
        same(Object.fromEntries(order.map((k, i) => [k, { [k]: i, z: [i, { y: k, x: null }] }])));
      }
    }
  });

  it('attack: ever-new and huge keys (a request\'s arguments) never grow the key cache past its bounds, and still come out right', async () => {
    // A module of its own: the cache as a fresh process has it, not filled by the tests above.
    vi.resetModules();
    const { canonicalJson, keyCacheSize, referenceCanonicalJson } = await import('../../../services/receipts/canonical.ts');
    const huge = (i: number) => `${i}:${'k'.repeat(10_000)}`;
    for (let i = 0; i < 300; i++) {
      const value = { [huge(i)]: i, [`short-${i}`]: { [`nested-${i}`]: true } };
      expect(canonicalJson(value)).toBe(referenceCanonicalJson(value));
    }
    for (let i = 0; i < 6_000; i++) canonicalJson({ [`fresh-${i}`]: i });
    const { entries, chars } = keyCacheSize();
    console.log(`attack canonical-key-cache: 6,600 objects with new or 10 KB keys; cache ${entries} entries, ${chars} chars`);
    expect(entries).toBeLessThanOrEqual(4096);
    expect(chars).toBeLessThan(4096 * 2 * (64 + 3));
  });

  it('hands everything that is not plain JSON data to the reference (same output, same errors)', () => {
    class Point { constructor(readonly x: number) {} }
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic['self'] = cyclic;
    const deep: unknown[] = [];
    let cur = deep;
    for (let i = 0; i < 2000; i++) { const next: unknown[] = []; cur.push(next); cur = next; }
    for (const v of [
      { at: new Date('2024-01-01T00:00:00Z') }, { toJSON: () => 'x' }, { a: undefined, b: 1 }, [undefined, () => 1],
      { n: Number.NaN }, { n: Infinity }, 'lone \uD800', { ['\uDC00']: 1 }, new Point(1), { boxed: new String('s') },
      Object.create(null) as object, cyclic, deep, undefined, 10n,
    ]) same(v);
  });

  it('digests a text as SHA-256 over its UTF-8 bytes, whichever hash function Node offers', () => {
    for (const text of ['', '{"a":1}', 'caf\u00e9 \u{1F600}', 'lone \uD800 surrogate', 'x'.repeat(100_000)]) {
      expect(sha256OfCanonical(text)).toBe(`sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`);
    }
  });
});
