import { describe, expect, it } from 'vitest';
import { messageSchemas, parseMessage } from '../../../workflows/decision-messages.ts';

const answer = {
  kind: 'answer', round: 1, verdict: 'approve', channel: 'slack', approver_id: 'prn_1', tenant_id: 'default',
  args_digest: null, snapshot_hash: `sha256:${'a'.repeat(64)}`, attestation: { issued_at: '2026-11-25T00:00:00.000Z', mac: 'm' },
};

// The workflow validators parse with these schemas (without zod's compiled fast path): the same answers and
// the same precise refusals as a compiled parse.
describe('decision workflow messages', () => {
  it('accepts a well-formed answer, override and outcome, and keeps each schema once built', () => {
    expect(parseMessage(messageSchemas().AnswerInput, answer)).toEqual(answer);
    expect(messageSchemas().AnswerInput).toBe(messageSchemas().AnswerInput);
    const override = { kind: 'override', requested_by: 'prn_2', requester_roles: ['agent'], tenant_id: 'default', justification: '  urgent fix ', attestation: answer.attestation };
    expect(parseMessage(messageSchemas().OverrideInput, override).justification).toBe('urgent fix');
    const outcome = { kind: 'outcome', reported_by: 'prn_2', tenant_id: 'default', status: 'succeeded', output_digest: `sha256:${'b'.repeat(64)}`, violations: [], attestation: answer.attestation };
    expect(parseMessage(messageSchemas().OutcomeInput, outcome)).toEqual(outcome);
  });

  it('names the first bad field, and refuses unknown fields', () => {
    expect(() => parseMessage(messageSchemas().AnswerInput, { ...answer, round: 'x' })).toThrow(/^invalid message: round: /);
    expect(() => parseMessage(messageSchemas().AnswerInput, { ...answer, round: 0 })).toThrow(/^invalid message: round: /);
    expect(() => parseMessage(messageSchemas().AnswerInput, { ...answer, channel: 'fax' })).toThrow(/^invalid message: channel: /);
    expect(() => parseMessage(messageSchemas().AnswerInput, { ...answer, approved: true })).toThrow(/^invalid message: \(root\): .*approved/);
    expect(() => parseMessage(messageSchemas().AnswerInput, { ...answer, attestation: { mac: 'm' } })).toThrow(/^invalid message: attestation\.issued_at: /);
    expect(() => parseMessage(messageSchemas().OverrideInput, { kind: 'override', requested_by: 'p', requester_roles: [], tenant_id: 't', justification: '   ', attestation: answer.attestation }))
      .toThrow(/an override needs a justification/);
    expect(() => parseMessage(messageSchemas().OutcomeInput, 'nope')).toThrow(/^invalid message: \(root\): /);
  });
});
