import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, propagation, trace, type Span, type Tracer } from '@opentelemetry/api';
import { TraceContext, type StoredEvent } from '../../schemas/events.ts';
import type { EventSink } from './event-sink.ts';

/** The trace an event carries: a decision's DecisionRequested records the trace it was asked in. */
export function eventTrace(e: StoredEvent): TraceContext | undefined {
  if (e.type !== 'DecisionRequested') return undefined;
  const t = TraceContext.safeParse((e.data as { trace?: unknown }).trace);
  return t.success ? t.data : undefined;
}

/**
 * A sink whose sends of traced events are spans of their decisions' traces: each such event's publish is a
 * producer span, a child of the span that asked for the decision, and its record carries that span's W3C
 * context (`traceparent`) for consumers to continue the trace. Events without a trace are sent as before.
 */
export function tracedSink(sink: EventSink, tracer: Tracer, topic: string): EventSink {
  return {
    async send(events, through) {
      const spans: Span[] = [];
      const headers = new Map<string, Record<string, string>>();
      for (const e of events) {
        const t = eventTrace(e);
        if (!t) continue;
        const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: t.trace_id, spanId: t.span_id, traceFlags: TraceFlags.SAMPLED, isRemote: true });
        const span = tracer.startSpan(`${topic} publish`, {
          kind: SpanKind.PRODUCER,
          attributes: { 'messaging.system': 'kafka', 'messaging.destination.name': topic, 'messaging.operation': 'publish', 'messaging.kafka.message.key': e.stream_id, 'countersign.event.type': e.type, 'countersign.event.position': e.position },
        }, parent);
        const carrier: Record<string, string> = {};
        propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier);
        headers.set(e.event_id, carrier);
        spans.push(span);
      }
      try {
        await sink.send(events, through, headers.size > 0 ? headers : undefined);
      } catch (err) {
        for (const s of spans) {
          s.recordException(err instanceof Error ? err : String(err));
          s.setStatus({ code: SpanStatusCode.ERROR });
        }
        throw err;
      } finally {
        for (const s of spans) s.end();
      }
    },
    ...(sink.resumeFrom ? { resumeFrom: () => sink.resumeFrom!() } : {}),
    close: () => sink.close(),
  };
}
