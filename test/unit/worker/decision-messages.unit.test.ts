import { describe, expect, it } from 'vitest';
import { checkEnvelope, messageSchemas, parseMessage } from '../../../workflows/decision-messages.ts';

const envelope = { decision_id: 'dec_1', nonce: 'n0nce-0123456789abcdef' };
const answer = {
  kind: 'answer', ...envelope, round: 1, verdict: 'approve', channel: 'slack', approver_id: 'prn_1', approver_roles: ['approver'], approver_groups: ['ops'], tenant_id: 'default',
  args_digest: null, snapshot_hash: `sha256:${'a'.repeat(64)}`, attestation: { issued_at: '2026-11-25T00:00:00.000Z', mac: 'm' },
};

// The workflow validators parse with these schemas (without zod's compiled fast path): the same answers and
// the same precise refusals as a compiled parse.
describe('decision workflow messages', () => {
  it('accepts a well-formed answer, override and outcome, and keeps each schema once built', () => {
    expect(parseMessage(messageSchemas().AnswerInput, answer)).toEqual(answer);
    expect(messageSchemas().AnswerInput).toBe(messageSchemas().AnswerInput);
    const override = { kind: 'override', ...envelope, requested_by: 'prn_2', requester_roles: ['agent'], tenant_id: 'default', justification: '  urgent fix ', attestation: answer.attestation };
    expect(parseMessage(messageSchemas().OverrideInput, override).justification).toBe('urgent fix');
    const outcome = { kind: 'outcome', ...envelope, reported_by: 'prn_2', tenant_id: 'default', status: 'succeeded', output_digest: `sha256:${'b'.repeat(64)}`, violations: [], attestation: answer.attestation };
    expect(parseMessage(messageSchemas().OutcomeInput, outcome)).toEqual(outcome);
  });

  it('names the first bad field, and refuses unknown fields', () => {
    expect(() => parseMessage(messageSchemas().AnswerInput, { ...answer, round: 'x' })).toThrow(/^invalid message: round: /);
    expect(() => parseMessage(messageSchemas().AnswerInput, { ...answer, round: 0 })).toThrow(/^invalid message: round: /);
    expect(() => parseMessage(messageSchemas().AnswerInput, { ...answer, channel: 'fax' })).toThrow(/^invalid message: channel: /);
    expect(() => parseMessage(messageSchemas().AnswerInput, { ...answer, approved: true })).toThrow(/^invalid message: \(root\): .*approved/);
    expect(() => parseMessage(messageSchemas().AnswerInput, { ...answer, attestation: { mac: 'm' } })).toThrow(/^invalid message: attestation\.issued_at: /);
    expect(() => parseMessage(messageSchemas().OverrideInput, { kind: 'override', ...envelope, requested_by: 'p', requester_roles: [], tenant_id: 't', justification: '   ', attestation: answer.attestation }))
      .toThrow(/an override needs a justification/);
    expect(() => parseMessage(messageSchemas().OutcomeInput, 'nope')).toThrow(/^invalid message: \(root\): /);
  });

  it('refuses a message without the run it is for or without a nonce', () => {
    const { decision_id: _d, ...noDecision } = answer;
    expect(() => parseMessage(messageSchemas().AnswerInput, noDecision)).toThrow(/^invalid message: decision_id: /);
    const { nonce: _n, ...noNonce } = answer;
    expect(() => parseMessage(messageSchemas().AnswerInput, noNonce)).toThrow(/^invalid message: nonce: /);
    expect(() => parseMessage(messageSchemas().AnswerInput, { ...answer, nonce: 'short' })).toThrow(/^invalid message: nonce: /);
  });

  it('attack: an answer without the identity the API attested, or with one too large to be anyone\'s, is refused by its field', () => {
    const { approver_roles: _r, ...noRoles } = answer;
    const { approver_groups: _g, ...noGroups } = answer;
    const long = 'g'.repeat(201);
    const attempts: Array<[unknown, RegExp]> = [
      [noRoles, /^invalid message: approver_roles: /],
      [noGroups, /^invalid message: approver_groups: /],
      [{ ...answer, approver_roles: 'approver' }, /^invalid message: approver_roles: /],
      [{ ...answer, approver_groups: [1] }, /^invalid message: approver_groups\.0: /],
      [{ ...answer, approver_roles: Array.from({ length: 51 }, (_, i) => `r${i}`) }, /^invalid message: approver_roles: /],
      [{ ...answer, approver_groups: Array.from({ length: 501 }, (_, i) => `g${i}`) }, /^invalid message: approver_groups: /],
      [{ ...answer, approver_roles: [long] }, /^invalid message: approver_roles\.0: /],
      [{ ...answer, approver_groups: ['ops', long] }, /^invalid message: approver_groups\.1: /],
    ];
    let through = 0;
    for (const [message, error] of attempts) {
      try {
        parseMessage(messageSchemas().AnswerInput, message);
        through += 1;
      } catch (err) {
        expect((err as Error).message).toMatch(error);
      }
    }
    console.log(`attack answer-identity-fields: ${attempts.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  });

  it('checks the envelope: the right run, an unseen nonce, a fresh attestation', () => {
    const now = Date.parse(answer.attestation.issued_at) + 1_000;
    const target = { claimed: 'dec_1', actual: 'dec_1', what: 'decision' as const };
    expect(checkEnvelope(answer, target, new Set(), now)).toBeNull();
    expect(checkEnvelope(answer, { ...target, actual: 'dec_2' }, new Set(), now)).toBe('the message is for another decision');
    expect(checkEnvelope(answer, target, new Set([answer.nonce]), now)).toMatch(/already delivered.*nonce/);
    expect(checkEnvelope(answer, target, new Set(), now + 10 * 60_000)).toBe('the attestation is stale');
    expect(checkEnvelope(answer, target, new Set(), now - 5 * 60_000)).toBe('the attestation is stale');
  });
});
