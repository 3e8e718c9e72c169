import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { serializerCompiler } from 'fastify-type-provider-zod';
import { ActivationAnswer, type ApprovalRoute, PolicyDetail, PolicyDiff, PolicyList, PolicyVersions, ReviewRequested, SimulateAnswer, ValidationReport } from '../../../schemas/policy-api.ts';
import { diffDocuments, foldPolicy, policySummary, versionSummary, type PolicyEvent } from '../../../services/lifecycle/policy-store.ts';
import { approvalRoute } from '../../../services/decisions/approval-requirements.ts';
import { compile, simulate } from '../../../services/policy/index.ts';

// The answers as the API sends them: serialized by the same compiler the server uses, from the route's schema.
const sent = (schema: z.ZodType, data: unknown): unknown => JSON.parse(serializerCompiler({ schema, method: 'GET', url: '/', httpStatus: '200' })(data));
const asJson = (data: unknown): unknown => JSON.parse(JSON.stringify(data));

const NOW = new Date('2025-01-08T12:00:00Z');
const doc = (id: string, rules: unknown[]) => ({ apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: 'Refunds', domain: 'payments' }, rules });
const HASH = `sha256:${'a'.repeat(64)}`;
const at = '2025-01-08T12:00:00.000Z';
const events: PolicyEvent[] = [
  { type: 'PolicyDrafted', data: { policy_id: 'refunds', version: 1, document: doc('refunds', [{ name: 'old', match: { tool: 'pay' }, decision: 'DENY' }]), drafted_by: 'ann' }, recorded_at: at, stream_version: 1 },
  { type: 'PolicyActivated', data: { policy_id: 'refunds', version: 1, scope: { level: 'tenant' }, document: doc('refunds', [{ name: 'old', match: { tool: 'pay' }, decision: 'DENY' }]), snapshot: {}, hash: HASH, signature: 'sig', signing_key_id: 'k1', activated_by: 'ann' }, recorded_at: at, stream_version: 2 },
  { type: 'PolicyDrafted', data: { policy_id: 'refunds', version: 2, document: doc('refunds', [{ name: 'old', match: { tool: 'pay' }, decision: 'ALLOW' }]), drafted_by: 'bob', cloned_from: 1 }, recorded_at: at, stream_version: 3 },
  { type: 'PolicyActivationRequested', data: { policy_id: 'refunds', version: 2, review_id: 'policy-review/t/refunds/x', document_hash: HASH, requested_by: 'bob', authors: ['bob'], deadline: at }, recorded_at: at, stream_version: 4 },
];

describe('the policy routes\' answer schemas', () => {
  const s = foldPolicy('refunds', events)!;
  it('send the lifecycle answers exactly as built (nothing dropped, nothing refused)', () => {
    const summary = policySummary(s);
    const list = { items: [summary, { ...summary, scope: { level: 'platform' }, read_only: true }] };
    expect(sent(PolicyList, list)).toEqual(asJson(list));
    const active = s.versions[0]!;
    const detail = { ...summary, draft_document: s.draft!.document, active: { ...versionSummary(active, s.active_version), document: active.document }, interpreted: [] };
    expect(sent(PolicyDetail, detail)).toEqual(asJson(detail));
    const versions = { id: s.policy_id, active_version: s.active_version, items: s.versions.map((v) => versionSummary(v, s.active_version)), scope: { level: 'platform' }, read_only: true };
    expect(sent(PolicyVersions, versions)).toEqual(asJson(versions));
    const diff = { id: 'refunds', from: '1', to: 'draft', ...diffDocuments(active.document, s.draft!.document) };
    expect(sent(PolicyDiff, diff)).toEqual(asJson(diff));
    const report = { version: 2, document_hash: HASH, runs: 1, window_days: 7, changed: 1, stricter: 0, looser: 1, unchanged: 0, by_rule: { old: { stricter: 0, looser: 1, unchanged: 0, changed: 1 } }, examples: [{ decision_id: 'd', before: 'DENY', after: 'ALLOW', rule: 'old' }] };
    expect(sent(ValidationReport, report)).toEqual(report);
    const rollback = { id: 'refunds', version: 3, hash: HASH, signature: 'sig', signing_key_id: 'k1', status: 'active', unchanged: false, rolled_back_to: 1 };
    expect(sent(ActivationAnswer, rollback)).toEqual(rollback);
    const review = { id: 'refunds', version: 2, status: 'pending_approval', review_id: 'r', deadline: at, authors: ['bob'], requested_by: 'bob', change: { kind: 'rollback', to_version: 1 } };
    expect(sent(ReviewRequested, review)).toEqual(review);
  });

  it('send an agent-scoped policy\'s scope as built', () => {
    const scoped = { ...doc('bot-refunds', [{ name: 'r', match: { tool: 'pay' }, decision: 'ALLOW' }]), scope: { level: 'agent', agent: 'bot' } };
    const t = foldPolicy('bot-refunds', [
      { type: 'PolicyDrafted', data: { policy_id: 'bot-refunds', version: 1, document: scoped, drafted_by: 'ann' }, recorded_at: at, stream_version: 1 },
      { type: 'PolicyActivated', data: { policy_id: 'bot-refunds', version: 1, scope: scoped.scope, document: scoped, snapshot: {}, hash: HASH, activated_by: 'ann' }, recorded_at: at, stream_version: 2 },
    ])!;
    const list = { items: [policySummary(t)] };
    expect(sent(PolicyList, list)).toEqual(asJson(list));
    expect(list.items[0]!.scope).toEqual({ level: 'agent', agent: 'bot' });
    const versions = { id: t.policy_id, active_version: t.active_version, items: t.versions.map((v) => versionSummary(v, t.active_version)) };
    expect(sent(PolicyVersions, versions)).toEqual(asJson(versions));
  });

  it('keep a field a later version adds', () => {
    const summary = { ...policySummary(s), added_later: { x: 1 } };
    expect(sent(PolicyList, { items: [summary] })).toEqual(asJson({ items: [summary] }));
  });

  it('send a simulation with its approval route as built', () => {
    const c = compile([{ document: doc('refunds', [{ name: 'old', match: { tool: 'pay' }, decision: 'DENY' }]), version: 1 }]);
    if (!c.ok) throw new Error(JSON.stringify(c.errors));
    const draft = doc('refunds', [{ text: 'Require manager approval for refunds over $500' }]);
    const out = simulate({ body: { request: { agent: { id: 'a' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 900 } }, policy: draft }, active: c.snapshot, now: NOW });
    if (!out.ok) throw new Error(JSON.stringify(out.errors));
    expect(out.result.decision).toBe('REQUIRE_APPROVAL');
    const route: ApprovalRoute = approvalRoute(out.result, NOW).map((r) => ({
      ...r, levels: r.levels.map((l) => ({ ...l, notified: [{ principal_id: 'mia', name: 'Mia', channels: ['dashboard', 'slack'] }, { principal_id: 'max', name: 'Max', channels: ['dashboard'], on_behalf_of: ['mia'] }] })),
    }));
    expect(route.length).toBeGreaterThan(0);
    const answer = { ...out.result, policies: [{ policy_id: 'refunds', version: 1, hash: HASH }], approval_route: route };
    expect(sent(SimulateAnswer, answer)).toEqual(asJson(answer));
  });
});
