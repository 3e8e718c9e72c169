import { describe, expect, it } from 'vitest';
import { decisionIdFor } from '../../../services/decisions/decision-id.ts';

describe('decision ids from idempotency keys', () => {
  it('are the same for one principal\'s retries and differ across principals and tenants', () => {
    const a = decisionIdFor('acme', 'prn_a', 'k1');
    expect(decisionIdFor('acme', 'prn_a', 'k1')).toBe(a);
    expect(decisionIdFor('acme', 'prn_b', 'k1')).not.toBe(a);
    expect(decisionIdFor('other', 'prn_a', 'k1')).not.toBe(a);
    expect(decisionIdFor('acme', 'prn_a', 'k2')).not.toBe(a);
  });

  it('keys holding the separator stay apart from other keys', () => {
    expect(decisionIdFor('acme', 'prn_a', 'b/k')).not.toBe(decisionIdFor('acme', 'prn_a', 'b'));
    expect(decisionIdFor('acme-corp', 'prn_a', 'k')).not.toBe(decisionIdFor('acme', 'prn_a', 'k'));
  });

  it('are random without a key', () => {
    expect(decisionIdFor('acme', 'prn_a', undefined)).not.toBe(decisionIdFor('acme', 'prn_a', undefined));
  });
});
