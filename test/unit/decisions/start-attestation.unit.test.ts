import { describe, expect, it } from 'vitest';
import type { EventData } from '../../../schemas/events.ts';
import { attest, newNonce, verifyAttestation } from '../../../services/decisions/attestation.ts';
import { workflowIdFor } from '../../../services/decisions/ids.ts';
import { checkRunStart, signRunStart, type RunStart } from '../../../services/decisions/start-attestation.ts';
import { exampleSnapshot, firstRunEvents, storeOffline, syntheticLog, syntheticRequest } from '../../../services/audit/synthetic-runs.ts';
import { Replay } from '../../../services/audit/replay.ts';
import { sha256Digest } from '../../../services/receipts/canonical.ts';
import { createInMemoryKeyring } from '../../../services/receipts/keyring.ts';

const keyring = createInMemoryKeyring();
const keys = keyring.publicKeys();
const NOW = new Date('2026-12-01T10:00:00.000Z');
const request = { agent: { id: 'pay-bot' }, action: { tool: 'payment_tool', operation: 'Refund', args: { order: 'A-1' } }, context: { amount: 600 }, policy_rules: [] };
const snapshotHash = `sha256:${'1'.repeat(64)}`;

/** A run's first two events as the workflow records them for a start the API signed. */
function signedStart(over: { tenant?: string; decisionId?: string; increments?: Array<{ key: string; amount: number }> } = {}) {
  const tenant = over.tenant ?? 'default';
  const decisionId = over.decisionId ?? 'dec_00000000000000000000000000000001';
  const requested: EventData<'DecisionRequested'> = {
    decision_id: decisionId, tenant_id: tenant, request, request_digest: sha256Digest(request), args_digest: sha256Digest(request.action.args),
    idempotency_key: null, requested_by: 'prn_bot',
  };
  const evaluated: EventData<'PolicyEvaluated'> = {
    evaluation: { decision: 'DENY', reason: 'over the limit', matched_rule: 'big', matched_rules: [], constraints: {}, snapshot_hash: snapshotHash, facts: { counters: { k: 3 } }, now: NOW.toISOString() },
    policies: [{ policy_id: 'refunds', version: 1, hash: snapshotHash }],
    default_decision: 'DENY',
  };
  const start = { workflow_id: workflowIdFor(tenant, decisionId), counter_increments: over.increments ?? [{ key: 'rate/pay-bot', amount: 1 }], windows: { override_sec: 60, outcome_sec: 60, override_groups: ['admins'], override_timeout_sec: 60 }, callback_url: null };
  const att = signRunStart(keyring, requested, evaluated, start, NOW);
  const withStart: EventData<'DecisionRequested'> = { ...requested, start: { ...start, ...att } };
  // What the log and Temporal carry: plain JSON.
  return { requested: JSON.parse(JSON.stringify(withStart)) as EventData<'DecisionRequested'> & { start: RunStart }, evaluated: JSON.parse(JSON.stringify(evaluated)) as EventData<'PolicyEvaluated'> };
}

describe('run start attestation (the API signs the whole start; the worker and the auditor check it)', () => {
  it('accepts the start as the API signed it, with or without the workflow id to compare', () => {
    const { requested, evaluated } = signedStart();
    expect(checkRunStart(requested, evaluated, keys)).toEqual({ ok: true });
    expect(checkRunStart(requested, evaluated, keys, requested.start.workflow_id)).toEqual({ ok: true });
  });

  it('refuses a start without a signature, even when no keys are at hand', () => {
    const { requested, evaluated } = signedStart();
    const { start: _s, ...unsigned } = requested;
    expect(checkRunStart(unsigned, evaluated, keys)).toMatchObject({ ok: false, reason: expect.stringMatching(/no signature of the API/) });
    expect(checkRunStart(unsigned, evaluated, null)).toMatchObject({ ok: false });
  });

  it('refuses every altered part of the start', () => {
    const cases: Array<[string, (r: any, e: any) => void]> = [
      ['decision', (_r, e) => { e.evaluation.decision = 'ALLOW'; }],
      ['facts', (_r, e) => { e.evaluation.facts.counters.k = 0; }],
      ['snapshot hash', (_r, e) => { e.evaluation.snapshot_hash = `sha256:${'2'.repeat(64)}`; }],
      ['policies', (_r, e) => { e.policies = []; }],
      ['default decision', (_r, e) => { e.default_decision = 'ALLOW'; }],
      ['tenant', (r) => { r.tenant_id = 'other'; }],
      ['decision id', (r) => { r.decision_id = 'dec_00000000000000000000000000000002'; }],
      ['requester', (r) => { r.requested_by = 'prn_admin'; }],
      ['request', (r) => { r.request.context.amount = 1; }],
      ['request and its digest', (r) => { r.request.context.amount = 1; r.request_digest = sha256Digest(r.request); }],
      ['arguments digest', (r) => { r.args_digest = null; }],
      ['idempotency key', (r) => { r.idempotency_key = 'k'; }],
      ['counter increments', (r) => { r.start.counter_increments = [{ key: 'rate/pay-bot', amount: 0 }]; }],
      ['negative counter increments', (r) => { r.start.counter_increments = [{ key: 'rate/pay-bot', amount: -1000 }]; }],
      ['windows', (r) => { r.start.windows.override_groups = ['everyone']; }],
      ['callback url', (r) => { r.start.callback_url = 'https://evil.example/'; r.request.callback_url = 'https://evil.example/'; r.request_digest = sha256Digest(r.request); }],
      ['issued at', (r) => { r.start.issued_at = '2026-12-01T10:00:01.000Z'; }],
      ['signature', (r) => { r.start.signature.value = Buffer.alloc(64).toString('base64url'); }],
      // Asking the tenant's evaluator can end a judgment round without people: never on a start that did not say so.
      ['evaluator asked', (r) => { r.start.judge = true; }],
    ];
    for (const [name, alter] of cases) {
      const { requested, evaluated } = signedStart();
      alter(requested, evaluated);
      expect(checkRunStart(requested, evaluated, keys), name).toMatchObject({ ok: false });
    }
  });

  it('signs whether the run asks the evaluator: a start that says so verifies, and dropping it is refused', () => {
    const { requested, evaluated } = signedStart();
    const { signature: _s, issued_at: _i, ...start } = requested.start;
    const att = signRunStart(keyring, requested, evaluated, { ...start, judge: true }, NOW);
    const judged = { ...requested, start: { ...start, judge: true as const, ...att } };
    expect(checkRunStart(judged, evaluated, keys)).toEqual({ ok: true });
    const { judge: _j, ...dropped } = judged.start;
    expect(checkRunStart({ ...judged, start: dropped }, evaluated, keys)).toMatchObject({ ok: false });
  });

  it('refuses a signature that holds but is for another workflow (a start replayed under another id)', () => {
    const { requested, evaluated } = signedStart();
    expect(checkRunStart(requested, evaluated, keys, 'decision/default/dec_other')).toMatchObject({ ok: false, reason: expect.stringMatching(/signed for workflow/) });
  });

  it('refuses negative increments by schema, even signed', () => {
    const { requested, evaluated } = signedStart({ increments: [{ key: 'cost/pay-bot', amount: -500 }] });
    expect(checkRunStart(requested, evaluated, keys)).toMatchObject({ ok: false, reason: expect.stringMatching(/never negative/) });
  });

  it('says when the key is unknown (the worker re-reads the key set once), and trusts no other keyring', () => {
    const { requested, evaluated } = signedStart();
    const other = createInMemoryKeyring().publicKeys();
    expect(checkRunStart(requested, evaluated, other)).toMatchObject({ ok: false, unknownKey: true });
  });
});

describe('message attestation (HMAC of the API) covers the run and the nonce', () => {
  const secret = Buffer.from('s'.repeat(32));
  const message = () => attest(secret, { kind: 'answer', decision_id: 'dec_1', nonce: newNonce(), round: 1, verdict: 'approve', approver_id: 'prn_1', tenant_id: 'default' }, NOW);
  it('holds for the message as attested and for nothing else', () => {
    const m = message();
    expect(verifyAttestation(secret, m, NOW)).toEqual({ ok: true });
    for (const change of [{ decision_id: 'dec_2' }, { nonce: newNonce() }, { round: 2 }, { verdict: 'reject' }, { approver_id: 'prn_2' }, { tenant_id: 'other' }]) {
      expect(verifyAttestation(secret, { ...m, ...change }, NOW), JSON.stringify(change)).toMatchObject({ ok: false });
    }
  });
  it('gives each message its own nonce', () => {
    expect(new Set(Array.from({ length: 100 }, () => message().nonce)).size).toBe(100);
  });
});

describe('audit replay checks each run start', () => {
  const LATER = new Date(NOW.getTime() + 3_600_000);
  const replay = (log: ReturnType<typeof syntheticLog>, parallel: false | { workers: number; after: number } = false) => {
    const r = new Replay({ keys, now: LATER, parallel });
    for (const e of log) r.add({ value: JSON.stringify(e), where: e.position });
    return r.finish();
  };
  it('accepts runs the API started', () => {
    expect(replay(syntheticLog(keyring, { tenantId: 'acme', runs: 5, tag: 'start', now: NOW })).divergences).toEqual([]);
  });
  it('reports a run whose start carries no signature (written by a workflow the API did not start)', () => {
    const good = syntheticLog(keyring, { tenantId: 'acme', runs: 1, tag: 'start', now: NOW });
    const { snapshot, policies } = exampleSnapshot();
    const decisionId = 'dec_0000000000000000000000000000000f';
    const events = firstRunEvents({ decisionId, tenantId: 'acme', request: syntheticRequest(3), snapshot, policies, now: NOW, keyring });
    const { start: _s, ...unsigned } = events[0]!.data as Record<string, unknown>;
    let position = 1000;
    const stored = storeOffline(`run/${decisionId}`, 'acme', [{ ...events[0]!, data: unsigned as never }, ...events.slice(1)], null, NOW, () => String((position += 1)));
    const problems = replay([...good, ...stored]).divergences.filter((d) => d.stream_id === `run/${decisionId}`).map((d) => d.problem);
    expect(problems).toContain('run start not attested by Countersign: the run start carries no signature of the API (started outside Countersign)');
  });

  it('reports a run whose start was signed by another key', () => {
    const forger = createInMemoryKeyring();
    const problems = replay(syntheticLog(forger, { tenantId: 'acme', runs: 2, tag: 'start', now: NOW })).divergences.map((d) => d.problem);
    expect(problems.filter((p) => /run start not attested by Countersign: .*unknown_key/.test(p))).toHaveLength(2);
  });

  it('checks start signatures on the worker threads too: one altered byte of a signature is caught', () => {
    const log = syntheticLog(keyring, { tenantId: 'acme', runs: 3, tag: 'start', now: NOW });
    expect(replay(log, { workers: 1, after: 0 }).divergences).toEqual([]);
    // A start whose signature is another run's: the hash chain is recomputed, as by someone who rewrites the database.
    const other = log.filter((e) => e.type === 'DecisionRequested')[1]!.data as { start: RunStart };
    const events = firstRunEvents({ decisionId: 'dec_0000000000000000000000000000000e', tenantId: 'acme', request: syntheticRequest(1), snapshot: exampleSnapshot().snapshot, policies: exampleSnapshot().policies, now: NOW, keyring });
    const d = events[0]!.data as { start: RunStart };
    const swapped = { ...d, start: { ...d.start, signature: other.start.signature } };
    let position = 2000;
    const stored = storeOffline('run-dec_0000000000000000000000000000000e', 'acme', [{ ...events[0]!, data: swapped as never }, ...events.slice(1)], null, NOW, () => String((position += 1)));
    const problems = replay([...log, ...stored], { workers: 1, after: 0 }).divergences.map((x) => x.problem);
    expect(problems).toContain(`run start not attested by Countersign: the run start signature does not hold: bad_signature: signature does not match the document under key ${keyring.activeKeyId}`);
  });
});
