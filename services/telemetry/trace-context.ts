import { isSpanContextValid, trace } from '@opentelemetry/api';
import type { TraceContext } from '../../schemas/events.ts';

// W3C Trace Context: version-traceid-parentid-flags; version ff is invalid, all-zero ids are invalid.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;

/**
 * The trace a request belongs to, as a decision records it. While this process exports traces, the active
 * span (the API's request span, a child of any incoming traceparent, so the same trace id); otherwise the
 * caller's own traceparent, when it sent a valid one, so an auditor can still go from the receipt to the
 * agent's trace. Undefined when there is neither.
 */
export function requestTrace(traceparent: string | string[] | undefined): TraceContext | undefined {
  const active = trace.getActiveSpan()?.spanContext();
  if (active && isSpanContextValid(active)) return { trace_id: active.traceId, span_id: active.spanId };
  return parseTraceparent(traceparent);
}

/** A W3C traceparent header's trace and parent span, or undefined when it is missing or invalid. */
export function parseTraceparent(header: string | string[] | undefined): TraceContext | undefined {
  if (typeof header !== 'string') return undefined;
  const m = TRACEPARENT.exec(header.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId] = m as unknown as [string, string, string, string];
  if (version === 'ff' || (version === '00' && header.trim().length !== 55)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { trace_id: traceId, span_id: spanId };
}
