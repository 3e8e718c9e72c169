import { describe, expect, it } from 'vitest';
import { createInMemoryKeyring } from '../../../services/receipts/keyring.ts';
import { signedActivation } from '../../../services/lifecycle/activate-policy.ts';
import { checkReviewAnswer, evolveReview, type ActivationReview } from '../../../services/lifecycle/activation-review.ts';
import { checkPolicyChain, type ChainEvent } from '../../../services/lifecycle/policy-chain.ts';
import { exportSigned, exportVersion, verifyExport } from '../../../services/lifecycle/policy-export.ts';
import { signDocument } from '../../../services/receipts/sign.ts';

/** The pure parts of the policy lifecycle (issue 7): the review decider, the auditor's chain rules, export checks. */
const keys = createInMemoryKeyring();
const doc = (decision: string) => ({ apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'p', name: 'p' }, rules: [{ name: 'r', match: { tool: 't' }, decision }] });
const at = '2026-01-01T00:00:00.000Z';
let n = 0;
const ev = (type: string, data: Record<string, unknown>): ChainEvent => ({ type, data, recorded_at: at, stream_version: ++n, position: String(n) });
const requested = (authors: string[]) => ev('PolicyActivationRequested', { policy_id: 'p', version: 1, review_id: 'rv', document_hash: `sha256:${'a'.repeat(64)}`, requested_by: 'prn_a', authors, deadline: '2026-01-02T00:00:00.000Z' });

describe('review decider', () => {
  const open = evolveReview(null, { type: 'PolicyActivationRequested', data: { policy_id: 'p', version: 1, review_id: 'rv', document_hash: `sha256:${'a'.repeat(64)}`, requested_by: 'prn_a', authors: ['prn_a', 'prn_e'], deadline: '2026-01-02T00:00:00.000Z' } })!;
  const ok = { review_id: 'rv', verdict: 'approve' as const, by: 'prn_b', roles: ['admin'], document_hash: open.document_hash };
  const now = new Date('2026-01-01T12:00:00.000Z');
  it.each<[string, Partial<typeof ok>, ActivationReview | null, Date, RegExp]>([
    ['the requester', { by: 'prn_a' }, open, now, /asked for the activation cannot approve/],
    ['an editor of the draft', { by: 'prn_e' }, open, now, /author of the change/],
    ['a non-admin', { roles: ['approver', 'author'] }, open, now, /only an admin/],
    ['another document', { document_hash: `sha256:${'b'.repeat(64)}` }, open, now, /another draft document/],
    ['another review', { review_id: 'other' }, open, now, /for review other, not rv/],
    ['after the deadline', {}, open, new Date('2026-01-03T00:00:00.000Z'), /closed at its deadline/],
    ['a closed review', {}, { ...open, status: 'approved' }, now, /already approved/],
    ['a second answer', {}, { ...open, rejections: [{ by: 'prn_b', at }] }, now, /already answered/],
    ['no review', {}, null, now, /not been recorded/],
  ])('refuses %s', (_what, change, review, when, reason) => {
    const r = checkReviewAnswer(review, { ...ok, ...change }, when);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(reason);
  });
  it('counts a second admin', () => {
    expect(checkReviewAnswer(open, ok, now)).toEqual({ ok: true });
  });
});

describe('policy chain rules (audit replay)', () => {
  const v1 = signedActivation(keys, { document: doc('DENY'), version: 1, actor: 'prn_a' });
  const v2 = signedActivation(keys, { document: doc('ALLOW'), version: 2, actor: 'prn_a' });
  it('accepts a rollback that re-activates the named version exactly, and a reviewed activation', () => {
    n = 0;
    const events = [
      ev('PolicyDrafted', { policy_id: 'p', version: 1, document: doc('DENY'), drafted_by: 'prn_a' }),
      requested(['prn_a']),
      ev('PolicyActivationApproved', { policy_id: 'p', version: 1, review_id: 'rv', by: 'prn_b', at }),
      ev('PolicyActivated', { ...v1, approved_by: 'prn_b', review_id: 'rv' }),
      ev('PolicyDrafted', { policy_id: 'p', version: 2, document: doc('ALLOW'), drafted_by: 'prn_a', cloned_from: 1 }),
      ev('PolicyActivated', v2),
      ev('PolicyRolledBack', { policy_id: 'p', from_version: 2, to_version: 1, new_version: 3, rolled_back_by: 'prn_a' }),
      ev('PolicyActivated', signedActivation(keys, { document: doc('DENY'), version: 3, actor: 'prn_a' })),
    ];
    const r = checkPolicyChain('p', events);
    expect(r.problems).toEqual([]);
    expect(r.chain).toMatchObject({ status: 'active', active_version: 3, reviews: [{ status: 'approved', approved_by: 'prn_b' }] });
    expect(r.chain!.versions.map((v) => [v.version, v.approved_by, v.cloned_from, v.rolled_back_to])).toEqual([[1, 'prn_b', null, null], [2, null, 1, null], [3, null, null, 1]]);
  });
  it('reports a rollback that activated another document, an approval by an author, an activation without its approval', () => {
    n = 0;
    const events = [
      ev('PolicyDrafted', { policy_id: 'p', version: 1, document: doc('DENY'), drafted_by: 'prn_a' }),
      requested(['prn_a', 'prn_e']),
      ev('PolicyActivationApproved', { policy_id: 'p', version: 1, review_id: 'rv', by: 'prn_e', at }),
      ev('PolicyActivated', { ...v1, approved_by: 'prn_x', review_id: 'rv' }),
      ev('PolicyActivated', v2),
      ev('PolicyRolledBack', { policy_id: 'p', from_version: 2, to_version: 1, new_version: 3, rolled_back_by: 'prn_a' }),
      ev('PolicyActivated', signedActivation(keys, { document: doc('ALLOW'), version: 3, actor: 'prn_a' })),
    ];
    const problems = checkPolicyChain('p', events).problems.map((p) => [p.position, p.problem]);
    expect(problems).toEqual([
      ['3', expect.stringMatching(/review rv answered by prn_e, an author of the change/)],
      ['4', expect.stringMatching(/v1: activated by review rv without its approval in the log/)],
      ['7', expect.stringMatching(/a rollback to v1 activated another document than v1's/)],
    ]);
  });
});

describe('signed export', () => {
  const v1 = signedActivation(keys, { document: doc('DENY'), version: 1, actor: 'prn_a' });
  const version = { version: 1, hash: v1.hash, signature: null, signing_key_id: null, scope: v1.scope, document: v1.document, snapshot: v1.snapshot, activated_by: 'prn_a', activated_at: at };
  const e = exportVersion(keys, 'p', version, new Date(at));
  it('verifies, and names what is wrong with an altered one', () => {
    expect(verifyExport(e, keys.publicKeys())).toMatchObject({ ok: true, key_id: keys.activeKeyId });
    expect(verifyExport({ ...e, exported_at: '2026-02-01T00:00:00.000Z' }, keys.publicKeys())).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(verifyExport({ ...e, document: doc('ALLOW') }, keys.publicKeys())).toMatchObject({ ok: false, reason: 'hash_mismatch' });
    expect(verifyExport({ ...e, policy_id: 'q' }, keys.publicKeys())).toMatchObject({ ok: false, reason: 'hash_mismatch' });
    expect(verifyExport({ ...e, extra: 1 }, keys.publicKeys())).toMatchObject({ ok: false, reason: 'malformed', errors: [{ path: 'extra' }] });
    const other = createInMemoryKeyring();
    const { signature: _s, ...rest } = { ...e, signing_key_id: other.activeKeyId };
    expect(verifyExport({ ...rest, signature: signDocument(exportSigned(rest), other).value }, keys.publicKeys())).toMatchObject({ ok: false, reason: 'unknown_key' });
  });
});

describe('reviewed changes of the active set (audit replay)', () => {
  const v1 = signedActivation(keys, { document: doc('DENY'), version: 1, actor: 'prn_a' });
  const change = (kind: 'deprecate') => ev('PolicyActivationRequested', { policy_id: 'p', version: 1, review_id: 'rc', document_hash: `sha256:${'c'.repeat(64)}`, requested_by: 'prn_a', authors: ['prn_a'], deadline: '2026-01-02T00:00:00.000Z', change: { kind, version: 1 } });
  it('accepts a deprecation approved by a second admin, and flags one that names a review without its approval', () => {
    n = 0;
    const base = [ev('PolicyDrafted', { policy_id: 'p', version: 1, document: doc('DENY'), drafted_by: 'prn_a' }), ev('PolicyActivated', v1), change('deprecate')];
    const approved = [...base, ev('PolicyActivationApproved', { policy_id: 'p', version: 1, review_id: 'rc', by: 'prn_b', at }), ev('PolicyDeprecated', { policy_id: 'p', version: 1, deprecated_by: 'prn_a', approved_by: 'prn_b', review_id: 'rc' })];
    expect(checkPolicyChain('p', approved).problems).toEqual([]);
    expect(checkPolicyChain('p', approved).chain?.reviews).toEqual([expect.objectContaining({ review_id: 'rc', status: 'approved', approved_by: 'prn_b' })]);
    n = 0;
    const forged = [...base, ev('PolicyDeprecated', { policy_id: 'p', version: 1, deprecated_by: 'prn_a', approved_by: 'prn_b', review_id: 'rc' })];
    expect(checkPolicyChain('p', forged).problems).toEqual([expect.objectContaining({ problem: expect.stringMatching(/deprecated by review rc without its approval in the log/) })]);
  });
});
