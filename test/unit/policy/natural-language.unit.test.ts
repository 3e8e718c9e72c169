import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { compileSentence } from '../../../services/policy/natural-language.ts';

type Case = { text: string; interpreted?: Record<string, unknown>; error?: string };
const cases = parse(readFileSync(join(import.meta.dirname, '../../fixtures/policy/natural-language.yaml'), 'utf8')) as Case[];

describe('natural-language grammar (test/fixtures/policy/natural-language.yaml)', () => {
  for (const c of cases) {
    it(c.text === '' ? '(empty)' : c.text, () => {
      const r = compileSentence(c.text);
      if (c.error !== undefined) {
        expect(r.ok).toBe(false);
        if (!r.ok) {
          expect(r.message).toContain(c.error);
          // Every refusal says what to do instead.
          expect(r.message).toContain('structured rule');
        }
        return;
      }
      expect(r.ok, r.ok ? '' : r.message).toBe(true);
      if (r.ok) expect({ ...r.rule, reason: undefined }).toEqual({ ...c.interpreted, reason: undefined });
    });
  }
  it('is deterministic', () => {
    for (const c of cases) expect(JSON.stringify(compileSentence(c.text))).toBe(JSON.stringify(compileSentence(c.text)));
  });
  it('takes the decision from the rule when the sentence has no verb, and refuses a contradiction', () => {
    expect(compileSentence('refunds over $500', 'REQUIRE_APPROVAL')).toMatchObject({ ok: true, rule: { decision: 'REQUIRE_APPROVAL', condition: 'amount > 500' } });
    expect(compileSentence('Deny refunds', 'ALLOW')).toMatchObject({ ok: false });
  });
});
