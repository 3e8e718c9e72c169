import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { checkPolicyText, parsePolicyText } from '../../../services/policy/parse-text.ts';
import { compile } from '../../../services/policy/compile.ts';

type Case = { name: string; text: string; errors: string[] };
const cases = parse(readFileSync(join(import.meta.dirname, '../../fixtures/policy/compile-errors.yaml'), 'utf8')) as Case[];

describe('compile errors (test/fixtures/policy/compile-errors.yaml)', () => {
  for (const c of cases) {
    it(c.name, () => {
      const r = checkPolicyText(c.text, 'p.yaml');
      expect(r.ok).toBe(false);
      if (r.ok) return;
      const got = r.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`);
      // Every expected error is reported (as a prefix), and nothing else.
      expect(got.length, got.join('\n')).toBe(c.errors.length);
      c.errors.forEach((want, i) => expect(got[i]).toContain(want));
      for (const e of r.errors) expect(e.file).toBe('p.yaml');
    });
  }
});

describe('bounded input', () => {
  const time = (f: () => unknown) => {
    const t = performance.now();
    const v = f();
    return { v, ms: performance.now() - t };
  };
  it('refuses 10k-deep flow nesting quickly, without a crash', () => {
    const text = `apiVersion: countersign/v1\nrules: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`;
    const { v, ms } = time(() => parsePolicyText(text, 'deep.yaml'));
    expect(v).toMatchObject({ ok: false, errors: [{ line: 2, message: expect.stringContaining('nesting too deep') as string }] });
    expect(ms).toBeLessThan(500);
  });
  it('refuses 10k-deep block nesting', () => {
    const text = `a:\n${Array.from({ length: 10_000 }, (_, i) => `${' '.repeat(Math.min(i, 300))}- x`).join('\n')}`;
    expect(parsePolicyText(text, 'deep.yaml').ok).toBe(false);
  });
  it('refuses 10k-deep parsed values handed to compile', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 10_000; i++) deep = { rules: [deep] };
    const r = compile([{ document: deep, version: 1 }]);
    expect(r).toMatchObject({ ok: false, errors: [{ message: expect.stringContaining('nesting deeper') as string }] });
  });
  it('refuses a 5 MB document before parsing it', () => {
    const text = `apiVersion: countersign/v1\nkind: Policy\nmetadata: { id: big }\nrules:\n${'  - { name: r, decision: DENY }\n'.repeat(170_000)}`;
    expect(text.length).toBeGreaterThan(5_000_000);
    const { v, ms } = time(() => parsePolicyText(text, 'big.yaml'));
    expect(v).toMatchObject({ ok: false, errors: [{ message: expect.stringContaining('the limit is 1048576 bytes') as string }] });
    expect(ms).toBeLessThan(200);
  });
  it('caps alias expansion (billion laughs)', () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 8; i++) lines.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`);
    const r = parsePolicyText(lines.join('\n'), 'lol.yaml');
    expect(r.ok).toBe(false);
  });
  it('never compiles more than the rule limit', () => {
    const rules = Array.from({ length: 2001 }, (_, i) => ({ name: `r${i}`, decision: 'DENY' }));
    const r = compile([{ document: { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'x' }, rules }, version: 1 }]);
    expect(r.ok).toBe(false);
  });
  it('rejects a null document and a bad version', () => {
    expect(compile([{ document: null, version: 1 }])).toMatchObject({ ok: false, errors: [{ message: 'empty policy document' }] });
    expect(compile([{ document: { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'x' } }, version: -1 }]).ok).toBe(false);
  });
  it('rejects two versions of the same policy id in one set', () => {
    const doc = { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'x' } };
    const r = compile([{ document: doc, version: 1, source: 'a' }, { document: doc, version: 2, source: 'b' }]);
    expect(r).toMatchObject({ ok: false, errors: [{ file: 'b', path: 'metadata.id' }] });
  });
});
