import { describe, expect, it } from 'vitest';
import { DecisionRequest } from '../../../schemas/decision.ts';
import { CURRENT_SCHEMA_VERSION, EVENT_DATA, type StoredEvent } from '../../../schemas/events.ts';
import { BODY_LIMIT_BYTES, checkJsonBounds, MAX_JSON_NODES } from '../../../services/api/json-bounds.ts';
import { eventRecordBytes, MAX_EVENT_RECORD_BYTES, TOPIC_MAX_MESSAGE_BYTES, WIDEST_POSITION } from '../../../services/events/event-size.ts';
import { signedActivation } from '../../../services/lifecycle/activate-policy.ts';
import { policyStreamId, runStreamId } from '../../../services/events/stream-ids.ts';
import { sha256Digest } from '../../../services/receipts/canonical.ts';
import { createInMemoryKeyring } from '../../../services/receipts/keyring.ts';
import { byteBoundedParts } from '../../../services/publisher/kafka.ts';

/**
 * Every event a request body within the API's bound can cause fits the event topic (services/events/event-size.ts):
 * built here for the worst bodies, with every envelope field at its longest.
 */
const TENANT = 't'.repeat(63);
const DECISION = `dec_${'f'.repeat(32)}`;
const HASH = `sha256:${'0'.repeat(64)}`;

function stored(type: string, streamId: string, data: Record<string, unknown>): StoredEvent {
  const wf = `decision/${TENANT}/${DECISION}`;
  return {
    position: WIDEST_POSITION, stream_id: streamId, stream_version: 2_147_483_647, event_id: `${streamId}/${'e'.repeat(200)}`, type,
    schema_version: CURRENT_SCHEMA_VERSION, tenant_id: TENANT, data,
    metadata: { causation_id: wf, correlation_id: DECISION, workflow_id: wf, batch: { index: 99, size: 99 } },
    recorded_at: '2026-12-06T21:00:00.000Z', prev_hash: HASH, hash: HASH,
  };
}

/** A body of exactly `bytes` bytes: `fill` in args, the rest one string padded to the size. */
function bodyOf(bytes: number, fill: unknown[]): string {
  const shell = (pad: string) => JSON.stringify({
    agent: { id: 'a'.repeat(200) }, action: { tool: 'payment_tool', args: { fill: '__FILL__', pad } },
    idempotency_key: 'k'.repeat(200), callback_url: `https://example.com/${'c'.repeat(1900)}`,
  }).replace('"__FILL__"', `[${fill.map(String).join(',')}]`);
  const without = Buffer.byteLength(shell(''));
  const body = shell('x'.repeat(bytes - without));
  expect(Buffer.byteLength(body)).toBe(bytes);
  return body;
}

function decisionRequested(body: string): StoredEvent {
  const parsed = JSON.parse(body) as unknown;
  checkJsonBounds(parsed);
  const request = DecisionRequest.parse(parsed);
  const data = EVENT_DATA.DecisionRequested.parse({
    decision_id: DECISION, tenant_id: TENANT, request, request_digest: sha256Digest(request), args_digest: HASH,
    idempotency_key: request.idempotency_key, requested_by: `prn_${'p'.repeat(80)}`,
  });
  return stored('DecisionRequested', runStreamId(DECISION), data);
}

describe('the event size bound', () => {
  it('sits below the topic limit, and the body bound far below it', () => {
    expect(MAX_EVENT_RECORD_BYTES).toBeLessThan(TOPIC_MAX_MESSAGE_BYTES);
    expect(2 * BODY_LIMIT_BYTES + MAX_JSON_NODES * 20).toBeLessThan(MAX_EVENT_RECORD_BYTES);
  });

  it('takes the DecisionRequested of the largest body of plain strings', () => {
    const e = decisionRequested(bodyOf(BODY_LIMIT_BYTES, []));
    expect(eventRecordBytes(e)).toBeGreaterThan(BODY_LIMIT_BYTES);
    expect(eventRecordBytes(e)).toBeLessThan(MAX_EVENT_RECORD_BYTES);
  });

  it('takes the DecisionRequested of the largest body whose numbers print longer than they were sent', () => {
    // `1e20` (4 bytes) prints as 21 digits: the most a body can grow on re-serialisation, as many times as it may.
    const e = decisionRequested(bodyOf(BODY_LIMIT_BYTES, Array.from({ length: MAX_JSON_NODES - 20 }, () => '1e20')));
    expect(eventRecordBytes(e)).toBeGreaterThan(1.5 * BODY_LIMIT_BYTES);
    expect(eventRecordBytes(e)).toBeLessThan(MAX_EVENT_RECORD_BYTES);
  });

  it('takes the PolicyActivated of a policy document as large as a body (document and compiled snapshot)', () => {
    const rules = [];
    // As many rules as a policy may have (2000), each as long as fills the body bound.
    for (let i = 0; i < 2000; i++) {
      rules.push({ name: `r${i}`, match: { tool: `tool_${i}_*`, environment: 'prod' }, condition: `amount > ${i} && vendor_status == "approved"`, decision: 'DENY', reason: 'r'.repeat(365) });
    }
    const document = { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'big', name: 'Big' }, scope: { level: 'tenant' }, rules };
    expect(Buffer.byteLength(JSON.stringify(document))).toBeLessThan(BODY_LIMIT_BYTES);
    const data = signedActivation(createInMemoryKeyring(), { document, version: 1, actor: `prn_${'p'.repeat(80)}` });
    const e = stored('PolicyActivated', policyStreamId(TENANT, 'big'), data);
    expect(eventRecordBytes(e)).toBeGreaterThan(2 * BODY_LIMIT_BYTES * 0.9);
    expect(eventRecordBytes(e)).toBeLessThan(MAX_EVENT_RECORD_BYTES);
  });

  it('publishes in produce calls that each stay within the topic limit, in order', () => {
    const big = decisionRequested(bodyOf(BODY_LIMIT_BYTES, []));
    const small = stored('DecisionFinalized', runStreamId(DECISION), { decision: 'ALLOW', reason: 'ok', matched_rule: null, constraints: {}, via: 'policy' });
    const events = [small, big, big, big, small, big, small];
    const parts = byteBoundedParts(events);
    expect(parts.flat()).toEqual(events);
    for (const p of parts) expect(p.reduce((n, e) => n + eventRecordBytes(e), 0)).toBeLessThanOrEqual(TOPIC_MAX_MESSAGE_BYTES - 1024);
    expect(parts.length).toBeGreaterThan(1);
  });
});
