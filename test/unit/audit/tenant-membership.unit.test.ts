import { describe, expect, it } from 'vitest';
import type { PrincipalAccess, StoredEvent } from '../../../schemas/events.ts';
import { checkRunAgent, checkRunApprovals, foldTenantStream } from '../../../services/audit/tenant-membership.ts';

let position = 0;
const ev = (type: string, data: Record<string, unknown>, streamId = 'tenant/acme'): StoredEvent => {
  position += 1;
  return {
    position: String(position), stream_id: streamId, stream_version: position, event_id: `e${position}`, type, schema_version: 1, tenant_id: 'acme',
    data, metadata: {}, recorded_at: new Date(Date.UTC(2026, 0, 1, 0, position)).toISOString(), prev_hash: null, hash: `sha256:${'0'.repeat(64)}`,
  };
};
const access = (over: Partial<PrincipalAccess> = {}): PrincipalAccess => ({ name: 'x', roles: ['approver'], groups: [], disabled: false, agent_id: null, acts_for: [], ...over });

describe('a tenant stream folded', () => {
  it('says who joined the finance group and when they left (by leaving it, or by being disabled)', () => {
    const fin = access({ name: 'Fin', groups: ['finance'] });
    const events = [
      ev('TenantCreated', { tenant_id: 'acme', config: { name: 'Acme', default_decision: 'DENY', settings: {} }, by: 'system' }),
      ev('PrincipalCreated', { principal_id: 'prn_fin', kind: 'person', platform_admin: false, access: fin, by: 'prn_admin' }),
      ev('PrincipalCreated', { principal_id: 'prn_sam', kind: 'person', platform_admin: false, access: access({ name: 'Sam', groups: ['finance', 'sre'] }), by: 'prn_admin' }),
      ev('PrincipalChanged', { principal_id: 'prn_fin', before: fin, after: { ...fin, groups: [] }, by: 'prn_admin' }),
      ev('PrincipalChanged', { principal_id: 'prn_sam', before: access({ name: 'Sam', groups: ['finance', 'sre'] }), after: access({ name: 'Sam', groups: ['finance', 'sre'], disabled: true }), by: 'prn_admin' }),
      ev('ApiKeyCreated', { key_id: 'key_1', prefix: 'p', principal_id: 'prn_fin', name: '', expires_at: null, by: 'prn_admin' }),
      ev('ApiKeyRevoked', { key_id: 'key_1', prefix: 'p', principal_id: 'prn_fin', by: 'prn_admin' }),
    ];
    const { membership, problems } = foldTenantStream('acme', events);
    expect(problems).toEqual([]);
    expect(membership.groups).toEqual([
      { group: 'finance', principal_id: 'prn_fin', joined_at: events[1]!.recorded_at, left_at: events[3]!.recorded_at },
      { group: 'finance', principal_id: 'prn_sam', joined_at: events[2]!.recorded_at, left_at: events[4]!.recorded_at },
      { group: 'sre', principal_id: 'prn_sam', joined_at: events[2]!.recorded_at, left_at: events[4]!.recorded_at },
    ]);
    expect(membership.members.find((m) => m.principal_id === 'prn_fin')?.keys).toEqual({ minted: 1, revoked: 1 });
  });

  it('reports a change whose "before" is not what the stream recorded, a second creation, a key revoked twice', () => {
    const a = access();
    const { problems } = foldTenantStream('acme', [
      ev('PrincipalCreated', { principal_id: 'prn_a', kind: 'person', platform_admin: false, access: a, by: 'x' }),
      ev('PrincipalChanged', { principal_id: 'prn_a', before: { ...a, roles: ['admin'] }, after: a, by: 'x' }),
      ev('PrincipalCreated', { principal_id: 'prn_a', kind: 'person', platform_admin: false, access: a, by: 'x' }),
      ev('ApiKeyCreated', { key_id: 'key_1', prefix: 'p', principal_id: 'prn_a', name: '', expires_at: null, by: 'x' }),
      ev('ApiKeyRevoked', { key_id: 'key_1', prefix: 'p', principal_id: 'prn_a', by: 'x' }),
      ev('ApiKeyRevoked', { key_id: 'key_1', prefix: 'p', principal_id: 'prn_a', by: 'x' }),
    ]);
    expect(problems.map((p) => p.problem)).toEqual([
      expect.stringMatching(/"before" is not what the stream recorded/),
      expect.stringMatching(/created twice/),
      expect.stringMatching(/revoked twice/),
    ]);
  });
});

describe('platform admins on a tenant stream', () => {
  it('given a platform admin, when its flag is revoked, then it is a member without the flag; revoking a member without it is reported', () => {
    const { membership, problems } = foldTenantStream('acme', [
      ev('PrincipalCreated', { principal_id: 'prn_ops', kind: 'person', platform_admin: true, access: access({ roles: ['admin'] }), by: 'system' }),
      ev('PrincipalCreated', { principal_id: 'prn_fin', kind: 'person', platform_admin: false, access: access(), by: 'prn_ops' }),
      ev('PlatformAdminRevoked', { principal_id: 'prn_ops', by: 'prn_other' }),
      ev('PlatformAdminRevoked', { principal_id: 'prn_fin', by: 'prn_other' }),
      ev('PlatformAdminRevoked', { principal_id: 'prn_ops', by: 'prn_other' }),
    ]);
    expect(membership.members.find((m) => m.principal_id === 'prn_ops')).toMatchObject({ platform_admin: false, access: { roles: ['admin'], disabled: false }, changes: 1 });
    expect(problems.map((p) => p.problem)).toEqual([
      'PlatformAdminRevoked of prn_fin by prn_other: not a platform admin of this tenant',
      'PlatformAdminRevoked of prn_ops by prn_other: not a platform admin of this tenant',
    ]);
  });
});

describe('the judgment evaluator on a tenant stream', () => {
  const one = { url: 'https://llm.example/v1', model: 'm', timeout_ms: 10_000, api_key_fingerprint: 'sha256:0123456789abcdef' };
  const two = { ...one, model: 'm2', api_key_fingerprint: 'sha256:fedcba9876543210' };

  it('folds set, changed and removed into the evaluator as last recorded', () => {
    const set = [ev('EvaluatorChanged', { tenant_id: 'acme', before: null, after: one, by: 'prn_admin' }), ev('EvaluatorChanged', { tenant_id: 'acme', before: one, after: two, by: 'prn_admin' })];
    expect(foldTenantStream('acme', set)).toMatchObject({ problems: [], membership: { evaluator: two } });
    const removed = foldTenantStream('acme', [...set, ev('EvaluatorChanged', { tenant_id: 'acme', before: two, after: null, by: 'prn_admin' })]);
    expect(removed).toMatchObject({ problems: [], membership: { evaluator: null } });
  });

  it('takes the first change as given (an evaluator set before changes were recorded), then reports a "before" that is not what the stream recorded', () => {
    expect(foldTenantStream('acme', [ev('EvaluatorChanged', { tenant_id: 'acme', before: one, after: two, by: 'x' })]).problems).toEqual([]);
    const { problems } = foldTenantStream('acme', [
      ev('EvaluatorChanged', { tenant_id: 'acme', before: null, after: one, by: 'x' }),
      ev('EvaluatorChanged', { tenant_id: 'acme', before: two, after: null, by: 'x' }),
      ev('EvaluatorChanged', { tenant_id: 'acme', before: null, after: null, by: 'x' }),
    ]);
    expect(problems.map((p) => p.problem)).toEqual([expect.stringMatching(/"before" is not the evaluator the stream recorded/), expect.stringMatching(/changes nothing/)]);
  });
});

describe('runs checked against who their principals were', () => {
  const bot = access({ roles: ['agent'], agent_id: 'pay-bot' });
  const gw = access({ roles: ['agent'], acts_for: ['team-*'] });
  const stream = [
    ev('PrincipalCreated', { principal_id: 'prn_bot', kind: 'agent', platform_admin: false, access: bot, by: 'x' }),
    ev('PrincipalCreated', { principal_id: 'prn_gw', kind: 'agent', platform_admin: false, access: gw, by: 'x' }),
    ev('PrincipalCreated', { principal_id: 'prn_fin', kind: 'person', platform_admin: false, access: access({ groups: ['finance'] }), by: 'x' }),
  ];
  const { timeline } = foldTenantStream('acme', stream);
  const requested = (by: string, agent: string, acting?: string) => ev('DecisionRequested', {
    decision_id: 'dec_1', tenant_id: 'acme', request: { agent: { id: agent } }, request_digest: 'x', args_digest: null, idempotency_key: null, requested_by: by, ...(acting ? { acting_principal: acting } : {}),
  }, 'run-dec_1');

  it('accepts an agent asking as itself, and a gateway acting for a listed agent (recorded)', () => {
    expect(checkRunAgent(timeline, requested('prn_bot', 'pay-bot'))).toBeNull();
    expect(checkRunAgent(timeline, requested('prn_gw', 'team-1', 'prn_gw'))).toBeNull();
  });

  it('reports a run asked as another agent, or acting-for left unrecorded', () => {
    expect(checkRunAgent(timeline, requested('prn_bot', 'someone-else'))).toMatch(/neither its agent id/);
    expect(checkRunAgent(timeline, requested('prn_gw', 'team-1'))).toMatch(/without it being recorded/);
    expect(checkRunAgent(timeline, requested('prn_unknown', 'anything'))).toBeNull();
  });

  it('reports an answer from someone who was not then an enabled approver of the round', () => {
    const round = ev('ApprovalRequested', { round: 1, groups: ['finance'] }, 'run-dec_2');
    const ok = ev('ApprovalGranted', { round: 1, approver_id: 'prn_fin', channel: 'api', at: 'x' }, 'run-dec_2');
    const wrong = ev('ApprovalGranted', { round: 1, approver_id: 'prn_bot', channel: 'api', at: 'x' }, 'run-dec_2');
    expect(checkRunApprovals(timeline, [round, ok])).toEqual([]);
    expect(checkRunApprovals(timeline, [round, wrong]).map((p) => p.problem)).toEqual([expect.stringMatching(/prn_bot answered round 1/)]);
  });
});
