import { describe, expect, it } from 'vitest';
import { DecisionRequestedData, type EventData } from '../../../schemas/events.ts';
import { workflowIdFor } from '../../../services/decisions/ids.ts';
import { checkRunStart, signRunStart } from '../../../services/decisions/start-attestation.ts';
import { sha256Digest } from '../../../services/receipts/canonical.ts';
import { createInMemoryKeyring } from '../../../services/receipts/keyring.ts';
import { eventTrace } from '../../../services/publisher/traced-sink.ts';
import { parseTraceparent, requestTrace } from '../../../services/telemetry/trace-context.ts';
import { tracingSettings } from '../../../services/telemetry/tracing.ts';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

describe('W3C traceparent', () => {
  it('reads a valid header (version 00, and later versions with more fields)', () => {
    expect(parseTraceparent(`00-${T}-${S}-01`)).toEqual({ trace_id: T, span_id: S });
    expect(parseTraceparent(`00-${T}-${S}-00`)).toEqual({ trace_id: T, span_id: S });
    expect(parseTraceparent(`01-${T}-${S}-01-what-comes-next`)).toEqual({ trace_id: T, span_id: S });
  });

  it('refuses every malformed one', () => {
    for (const bad of [undefined, ['a', 'b'], '', `ff-${T}-${S}-01`, `00-${'0'.repeat(32)}-${S}-01`, `00-${T}-${'0'.repeat(16)}-01`,
      `00-${T.toUpperCase()}-${S}-01`, `00-${T}-${S}-01-extra`, `00-${T.slice(1)}-${S}-01`, `00-${T}-${S}`, 'x'.repeat(300)]) {
      expect(parseTraceparent(bad), String(bad)).toBeUndefined();
    }
  });

  it('without an active span (tracing off), a request records the caller\'s own trace', () => {
    expect(requestTrace(`00-${T}-${S}-01`)).toEqual({ trace_id: T, span_id: S });
    expect(requestTrace(undefined)).toBeUndefined();
  });
});

describe('tracing settings (the standard OTEL_* variables)', () => {
  it('is off without an endpoint, or when disabled, and on with one', () => {
    expect(tracingSettings({})).toMatchObject({ enabled: false });
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' })).toMatchObject({ enabled: false });
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' })).toMatchObject({ enabled: false });
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' })).toEqual({ enabled: true, endpoint: 'http://c:4318/v1/traces', protocol: 'http/protobuf' });
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:1/x', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }))
      .toEqual({ enabled: true, endpoint: 'http://t:1/x', protocol: 'http/json' });
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }))
      .toMatchObject({ protocol: 'http/protobuf' });
  });
});

describe('the recorded trace (DecisionRequested.trace)', () => {
  const keyring = createInMemoryKeyring();
  const NOW = new Date('2026-12-01T10:00:00.000Z');
  const request = { agent: { id: 'pay-bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 60 }, policy_rules: [] };
  const decisionId = 'dec_00000000000000000000000000000001';
  const evaluated: EventData<'PolicyEvaluated'> = {
    evaluation: { decision: 'ALLOW', reason: 'ok', matched_rule: 'small', matched_rules: [], constraints: {}, snapshot_hash: `sha256:${'1'.repeat(64)}`, facts: {}, now: NOW.toISOString() },
    policies: [], default_decision: 'DENY',
  };
  const start = { workflow_id: workflowIdFor('default', decisionId), counter_increments: [], windows: { override_sec: 60, outcome_sec: 60, override_groups: ['admins'], override_timeout_sec: 60 }, callback_url: null };
  const requested = (trace?: { trace_id: string; span_id: string }): EventData<'DecisionRequested'> => ({
    decision_id: decisionId, tenant_id: 'default', request, request_digest: sha256Digest(request), args_digest: null, idempotency_key: null, requested_by: 'prn_bot', ...(trace ? { trace } : {}),
  });

  it('is optional: events written before it still parse, and a start without one signs as before', () => {
    expect(DecisionRequestedData.safeParse(requested()).success).toBe(true);
    expect(DecisionRequestedData.safeParse(requested({ trace_id: T, span_id: S })).success).toBe(true);
    expect(DecisionRequestedData.safeParse(requested({ trace_id: 'nope', span_id: S })).success).toBe(false);
    const att = signRunStart(keyring, requested(), evaluated, start, NOW);
    expect(checkRunStart({ ...requested(), start: { ...start, ...att } }, evaluated, keyring.publicKeys())).toEqual({ ok: true });
  });

  it('attack trace-swap: the trace is covered by the API\'s start signature; changing, adding or dropping it is refused', () => {
    const signedTrace = { trace_id: T, span_id: S };
    const att = signRunStart(keyring, requested(signedTrace), evaluated, start, NOW);
    expect(checkRunStart({ ...requested(signedTrace), start: { ...start, ...att } }, evaluated, keyring.publicKeys())).toEqual({ ok: true });
    const attempts = [
      requested({ trace_id: 'a'.repeat(32), span_id: S }),
      requested({ trace_id: T, span_id: 'b'.repeat(16) }),
      requested(),
    ];
    const unsignedAtt = signRunStart(keyring, requested(), evaluated, start, NOW);
    const added = { ...requested(signedTrace), start: { ...start, ...unsignedAtt } };
    let through = 0;
    for (const r of [...attempts.map((a) => ({ ...a, start: { ...start, ...att } })), added]) {
      if (checkRunStart(JSON.parse(JSON.stringify(r)), evaluated, keyring.publicKeys()).ok) through += 1;
    }
    console.log(`attack trace-swap: ${attempts.length + 1} attempts, ${through} got through`);
    expect(through).toBe(0);
  });

  it('the publisher reads the trace only from DecisionRequested', () => {
    const base = { position: '1', stream_id: 'run/x', stream_version: 1, event_id: 'e', schema_version: 1, tenant_id: 't', metadata: {}, recorded_at: NOW.toISOString(), prev_hash: null, hash: 'h' };
    expect(eventTrace({ ...base, type: 'DecisionRequested', data: requested({ trace_id: T, span_id: S }) })).toEqual({ trace_id: T, span_id: S });
    expect(eventTrace({ ...base, type: 'DecisionRequested', data: requested() })).toBeUndefined();
    expect(eventTrace({ ...base, type: 'DecisionFinalized', data: { trace: { trace_id: T, span_id: S } } })).toBeUndefined();
  });
});
