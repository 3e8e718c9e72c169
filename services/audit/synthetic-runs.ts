import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DecisionRequest } from '../../schemas/decision.ts';
import { CURRENT_SCHEMA_VERSION, type EventData, type NewEvent, type StoredEvent } from '../../schemas/events.ts';
import { runEventId, runStreamId, workflowIdFor } from '../decisions/ids.ts';
import { signRunStart } from '../decisions/start-attestation.ts';
import { appendToStream } from '../events/append-to-stream.ts';
import type { Db } from '../events/db.ts';
import { withTenant } from '../events/db.ts';
import { eventHash } from '../events/hash-chain.ts';
import { readStream } from '../events/read-events.ts';
import { activatePolicy, policyStreamId } from '../lifecycle/activate-policy.ts';
import { activationSigned, compilePolicyVersion } from '../lifecycle/policy-version.ts';
import { compile, evaluate, parsePolicyText, type Snapshot } from '../policy/index.ts';
import { buildReceipt } from '../receipts/build-receipt.ts';
import { sha256Digest } from '../receipts/canonical.ts';
import type { Keyring } from '../receipts/keyring.ts';
import { signDocument, signReceipt } from '../receipts/sign.ts';

/**
 * Realistic runs without Temporal, for the tamper suite, the replay unit tests and the benchmarks: the same
 * events the decision workflow records (request, evaluation, finalization in one append, then ReceiptIssued
 * signed over the rebuilt receipt), evaluated against the example policy exactly as replay re-evaluates.
 * Not used by any service.
 */

const EXAMPLE_POLICY = path.resolve(import.meta.dirname, '..', 'stack', 'example-policy.yaml');

export function examplePolicyDocument(): Record<string, unknown> {
  const parsed = parsePolicyText(readFileSync(EXAMPLE_POLICY, 'utf8'), EXAMPLE_POLICY);
  if (!parsed.ok) throw new Error('example policy is invalid');
  return parsed.document;
}

/** Run i: a refund of a varying amount; every 10th is over $500 and stays pending approval (no receipt). */
export function syntheticRequest(i: number): DecisionRequest {
  const amount = i % 10 === 9 ? 600 + i : 10 + (i % 400);
  return { agent: { id: `agent-${i % 7}` }, action: { tool: 'payment_tool', operation: 'Refund', args: { order: `A-${i}` } }, context: { amount }, policy_rules: [] };
}

export const syntheticDecisionId = (tag: string, i: number) => `dec_${sha256Digest({ tag, i }).slice(7, 39)}`;

type RunInput = { decisionId: string; tenantId: string; request: DecisionRequest; snapshot: Snapshot; policies: Array<{ policy_id: string; version: number; hash: string }>; now: Date; keyring: Keyring };

const SYNTHETIC_WINDOWS = { override_sec: 86_400, outcome_sec: 86_400, override_groups: ['admins'], override_timeout_sec: 86_400 };

/** The events the workflow's first append writes for this run (DecisionFinalized only for final decisions). */
export function firstRunEvents(r: RunInput): NewEvent[] {
  // What Postgres and Kafka carry: JSON, without undefined fields (signed as the API signs it).
  const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
  const evaluated: EventData<'PolicyEvaluated'> = plain({ evaluation: evaluate(r.snapshot, r.request, {}, r.now), policies: r.policies, default_decision: 'DENY' as const });
  const evaluation = evaluated.evaluation;
  const requested: EventData<'DecisionRequested'> = {
    decision_id: r.decisionId,
    tenant_id: r.tenantId,
    request: r.request,
    request_digest: sha256Digest(r.request),
    args_digest: r.request.action.args ? sha256Digest(r.request.action.args) : null,
    idempotency_key: null,
    requested_by: 'synthetic',
  };
  const start = { workflow_id: workflowIdFor(r.tenantId, r.decisionId), counter_increments: [], windows: SYNTHETIC_WINDOWS, callback_url: null };
  const attestation = signRunStart(r.keyring, requested, evaluated, start, r.now);
  const events: NewEvent[] = [
    { type: 'DecisionRequested', eventId: runEventId(r.decisionId, 1), data: { ...requested, start: { ...start, ...attestation } } },
    { type: 'PolicyEvaluated', eventId: runEventId(r.decisionId, 2), data: evaluated },
  ];
  if (evaluation.decision !== 'REQUIRE_APPROVAL') {
    events.push({
      type: 'DecisionFinalized',
      eventId: runEventId(r.decisionId, 3),
      data: { decision: evaluation.decision, reason: evaluation.reason, matched_rule: evaluation.matched_rule, constraints: evaluation.constraints, via: 'policy' },
    });
  }
  // What Postgres and Kafka carry: JSON, without undefined fields.
  return events.map((e) => ({ ...e, data: JSON.parse(JSON.stringify(e.data)) as never, metadata: { correlation_id: r.decisionId } }));
}

/** Compiles the example policy as both the worker's effective set and the auditor's replay do. */
export function exampleSnapshot(version = 1): { document: Record<string, unknown>; snapshot: Snapshot; policies: Array<{ policy_id: string; version: number; hash: string }> } {
  const document = examplePolicyDocument();
  const one = compilePolicyVersion(document, version);
  if (!one.ok) throw new Error('example policy does not compile');
  const all = compile([{ document, version }], { defaultDecision: 'DENY' });
  if (!all.ok) throw new Error('example policy does not compile');
  return { document, snapshot: all.snapshot, policies: [{ policy_id: one.policy.policy_id, version, hash: one.hash }] };
}

/**
 * Writes the example policy and `runs` runs through the real append path (as the worker does: one append for
 * the decision, one for the receipt). Returns the decision ids.
 */
export async function appendSyntheticRuns(db: Db, keyring: Keyring, opts: { tenantId: string; runs: number; tag: string; now: Date }): Promise<string[]> {
  await activatePolicy(db, keyring, { tenantId: opts.tenantId, document: examplePolicyDocument(), actor: 'synthetic', now: opts.now });
  const { snapshot, policies } = exampleSnapshot();
  const ids: string[] = [];
  for (let i = 0; i < opts.runs; i += 1) {
    const decisionId = syntheticDecisionId(opts.tag, i);
    const events = firstRunEvents({ decisionId, tenantId: opts.tenantId, request: syntheticRequest(i), snapshot, policies, now: opts.now, keyring });
    const head = await appendToStream(db, { streamId: runStreamId(decisionId), tenantId: opts.tenantId, expectedVersion: 0, events, recordedAt: opts.now });
    ids.push(decisionId);
    if (events.length < 3) continue; // pending approval: no receipt yet
    const stored = await withTenant(db, opts.tenantId, (c) => readStream(c, runStreamId(decisionId)));
    const receipt = buildReceipt(stored);
    if (!receipt) throw new Error(`no receipt for ${decisionId}`);
    const signed = signReceipt(receipt, keyring);
    await appendToStream(db, {
      streamId: runStreamId(decisionId),
      tenantId: opts.tenantId,
      expectedVersion: head.streamVersion,
      recordedAt: opts.now,
      events: [{ type: 'ReceiptIssued', eventId: runEventId(decisionId, head.streamVersion + 1), data: { receipt_digest: sha256Digest(signed.receipt), head_version: head.streamVersion, signature: signed.signature }, metadata: { correlation_id: decisionId } }],
    });
  }
  return ids;
}

/** Turns proposed events into their stored form, chained after `prev`, exactly as append-to-stream would. */
export function storeOffline(streamId: string, tenantId: string, events: NewEvent[], prev: StoredEvent | null, recordedAt: Date, nextPosition: () => string): StoredEvent[] {
  const out: StoredEvent[] = [];
  let last = prev;
  for (const [i, e] of events.entries()) {
    const fields = {
      stream_id: streamId,
      stream_version: (last?.stream_version ?? 0) + 1,
      event_id: e.eventId,
      type: e.type,
      schema_version: CURRENT_SCHEMA_VERSION,
      tenant_id: tenantId,
      data: JSON.parse(JSON.stringify(e.data)) as Record<string, unknown>,
      metadata: { ...e.metadata, batch: { index: i + 1, size: events.length } },
      recorded_at: recordedAt.toISOString(),
      prev_hash: last?.hash ?? null,
    };
    const stored: StoredEvent = { position: nextPosition(), ...fields, hash: eventHash(fields) };
    out.push(stored);
    last = stored;
  }
  return out;
}

/**
 * A whole log in memory (no database): the example policy's activation and `runs` runs, in position order.
 * For the replay unit tests and the replay benchmark (which produces it to a Kafka topic).
 */
export function syntheticLog(keyring: Keyring, opts: { tenantId: string; runs: number; tag: string; now: Date }): StoredEvent[] {
  let position = 0;
  const next = () => String((position += 1));
  const { document, snapshot, policies } = exampleSnapshot();
  const p = policies[0]!;
  const compiled = compilePolicyVersion(document, 1);
  if (!compiled.ok) throw new Error('example policy does not compile');
  const unsigned = { policy_id: p.policy_id, version: 1, scope: (document['scope'] as Record<string, unknown>), document, snapshot: compiled.policy as unknown as Record<string, unknown>, hash: compiled.hash, activated_by: 'synthetic' };
  const sig = signDocument(activationSigned(unsigned), keyring);
  const streamId = policyStreamId(opts.tenantId, p.policy_id);
  const activation: EventData<'PolicyActivated'> = { ...unsigned, signature: sig.value, signing_key_id: sig.key_id };
  const log = storeOffline(streamId, opts.tenantId, [{ type: 'PolicyActivated', eventId: `${streamId}/1`, data: activation }], null, opts.now, next);
  for (let i = 0; i < opts.runs; i += 1) {
    const decisionId = syntheticDecisionId(opts.tag, i);
    const stream = runStreamId(decisionId);
    const first = storeOffline(stream, opts.tenantId, firstRunEvents({ decisionId, tenantId: opts.tenantId, request: syntheticRequest(i), snapshot, policies, now: opts.now, keyring }), null, opts.now, next);
    log.push(...first);
    if (first.length < 3) continue;
    const receipt = buildReceipt(first)!;
    const signed = signReceipt(receipt, keyring);
    const head = first[first.length - 1]!;
    log.push(...storeOffline(stream, opts.tenantId, [{ type: 'ReceiptIssued', eventId: runEventId(decisionId, head.stream_version + 1), data: { receipt_digest: sha256Digest(signed.receipt), head_version: head.stream_version, signature: signed.signature }, metadata: { correlation_id: decisionId } }], head, opts.now, next));
  }
  return log;
}
