import { describe, expect, it } from 'vitest';
import { compilePolicyVersion } from '../../../services/lifecycle/policy-version.ts';
import { exportSigned, exportVersion, verifyExport, type PolicyExport } from '../../../services/lifecycle/policy-export.ts';
import type { ActivatedVersion } from '../../../services/lifecycle/policy-store.ts';
import { sha256Digest } from '../../../services/receipts/canonical.ts';
import { createInMemoryKeyring } from '../../../services/receipts/keyring.ts';
import { signDocument } from '../../../services/receipts/sign.ts';

/**
 * An export is checked against the compiled policy frozen at its activation, which it carries: a later change
 * of what the compiler makes of its sentences leaves it intact, and a compiled policy altered in the file is
 * refused.
 */
const SENTENCE = 'Allow ledger_tool up to $100';
const document = { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'ledger', name: 'Ledger' }, scope: { level: 'tenant' }, rules: [{ text: SENTENCE }] };
const keyring = createInMemoryKeyring();

/** A version activated under an earlier compiler, which read the sentence as up to $300. */
function earlierVersion(): ActivatedVersion {
  const today = compilePolicyVersion(document, 1);
  if (!today.ok) throw new Error('the document compiles today');
  expect(today.policy.rules[0]!.condition).toBe('amount <= 100');
  const snapshot = JSON.parse(JSON.stringify({ ...today.policy, rules: [{ ...today.policy.rules[0]!, condition: 'amount <= 300' }] })) as Record<string, unknown>;
  return {
    version: 1, hash: sha256Digest(snapshot), signature: null, signing_key_id: null, scope: { level: 'tenant' }, document, snapshot,
    activated_by: 'prn_author', activated_at: '2026-01-01T00:00:00.000Z',
  };
}

const resign = (e: Omit<PolicyExport, 'signature'>): PolicyExport => ({ ...e, signature: signDocument(exportSigned(e), keyring).value });

describe('verifyExport checks the frozen compiled policy, never a recompilation', () => {
  it('an export of a version compiled by an earlier compiler is intact after the compiler changed', () => {
    const e = exportVersion(keyring, 'ledger', earlierVersion(), new Date('2026-02-01T00:00:00Z'));
    expect(e.snapshot).toBeDefined();
    const v = verifyExport(JSON.parse(JSON.stringify(e)), keyring.publicKeys());
    expect(v, JSON.stringify(v)).toMatchObject({ ok: true, key_id: keyring.activeKeyId });
  });

  it('a compiled policy altered in the file is refused (hash), and so is one re-hashed (signature)', () => {
    const e = exportVersion(keyring, 'ledger', earlierVersion(), new Date('2026-02-01T00:00:00Z'));
    const rules = (e.snapshot!['rules'] as Array<Record<string, unknown>>).map((r) => ({ ...r, condition: 'amount <= 1000000' }));
    const altered = { ...e, snapshot: { ...e.snapshot, rules } };
    expect(verifyExport(altered, keyring.publicKeys())).toMatchObject({ ok: false, reason: 'hash_mismatch' });
    const rehashed = { ...altered, hash: sha256Digest(altered.snapshot) };
    expect(verifyExport(rehashed, keyring.publicKeys())).toMatchObject({ ok: false, reason: 'bad_signature' });
    // Dropping the compiled policy falls back to compiling the document, whose reading today differs from the signed hash.
    const { snapshot: _dropped, ...without } = e;
    expect(verifyExport(without, keyring.publicKeys())).toMatchObject({ ok: false });
  });

  it('a compiled policy that names another policy or version is refused, even signed', () => {
    const e = exportVersion(keyring, 'ledger', earlierVersion(), new Date('2026-02-01T00:00:00Z'));
    const { signature: _s, ...unsigned } = e;
    const other = { ...e.snapshot!, policy_id: 'other' };
    const forged = resign({ ...unsigned, snapshot: other, hash: sha256Digest(other) });
    expect(verifyExport(forged, keyring.publicKeys())).toMatchObject({ ok: false, reason: 'hash_mismatch' });
  });

  it('an export made before the compiled policy was carried is still checked by compiling its document', () => {
    const today = compilePolicyVersion(document, 1);
    if (!today.ok) throw new Error('compiles');
    const legacy = resign({ format: 'countersign.policy-export/v1', policy_id: 'ledger', version: 1, scope: { level: 'tenant' }, document, hash: today.hash, exported_at: '2026-01-01T00:00:00.000Z', signing_key_id: keyring.activeKeyId });
    expect(verifyExport(legacy, keyring.publicKeys())).toMatchObject({ ok: true });
  });
});

describe('verifyExport names an altered document', () => {
  it('a document altered in the file is refused with its hash', () => {
    const e = exportVersion(keyring, 'ledger', earlierVersion(), new Date('2026-02-01T00:00:00Z'));
    const altered = structuredClone(e);
    (altered.document['rules'] as Array<Record<string, unknown>>)[0] = { name: 'all', decision: 'ALLOW' };
    const v = verifyExport(altered, keyring.publicKeys());
    expect(v).toMatchObject({ ok: false, reason: 'hash_mismatch' });
    expect(v.ok ? '' : v.detail).toMatch(/the document hashes to .* not the recorded .*altered/);
  });
});
