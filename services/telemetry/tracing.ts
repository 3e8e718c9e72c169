import { createRequire } from 'node:module';
import { IncomingMessage, type ClientRequest } from 'node:http';
import type { Span, Tracer } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Config } from '../config.ts';
import { redactUrl } from '../log-redaction.ts';

/**
 * OpenTelemetry tracing of one process, configured by the standard OTEL_* variables. Off unless an OTLP
 * endpoint is given (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and neither
 * OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none says otherwise. Off costs nothing: the SDK is never
 * loaded, no module is patched, and @opentelemetry/api hands out its no-op tracer.
 *
 * On: spans go over OTLP/HTTP (protobuf by default, JSON with OTEL_EXPORTER_OTLP_PROTOCOL=http/json) through a
 * batch processor; the SDK reads the rest of the standard variables itself (OTEL_EXPORTER_OTLP_HEADERS,
 * OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_PROPAGATORS, OTEL_BSP_*).
 * Incoming and outgoing HTTP (W3C traceparent honoured and sent) and Postgres queries are traced; a query
 * only inside a span (a request, an activity), so the polling loops write no traces of their own.
 */
export type Tracing =
  | { enabled: false }
  | { enabled: true; tracer: Tracer; spanProcessor: SpanProcessor; resource: Resource; shutdown: () => Promise<void> };

export type TracingSettings = { enabled: false; why: string } | { enabled: true; protocol: 'http/protobuf' | 'http/json'; endpoint: string };

type TracingConfig = Pick<Config, 'OTEL_SDK_DISABLED' | 'OTEL_TRACES_EXPORTER' | 'OTEL_EXPORTER_OTLP_ENDPOINT' | 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' | 'OTEL_EXPORTER_OTLP_PROTOCOL' | 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' | 'OTEL_SERVICE_NAME'>;

/** Whether (and how) a process with this configuration exports traces. */
export function tracingSettings(config: TracingConfig): TracingSettings {
  if (config.OTEL_SDK_DISABLED === 'true') return { enabled: false, why: 'OTEL_SDK_DISABLED=true' };
  if (config.OTEL_TRACES_EXPORTER === 'none') return { enabled: false, why: 'OTEL_TRACES_EXPORTER=none' };
  // As the specification says: the traces endpoint is used as given, the base endpoint gets /v1/traces.
  const endpoint = config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (config.OTEL_EXPORTER_OTLP_ENDPOINT ? `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces` : undefined);
  if (endpoint === undefined) return { enabled: false, why: 'no OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)' };
  return { enabled: true, endpoint, protocol: (config.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? config.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf') as 'http/protobuf' | 'http/json' };
}

const PROBES = /^\/(?:metrics|healthz|readyz)(?:\?|$)/;

/** The same redaction as the API's request log: emailed link tokens and secret-looking query values never leave. */
function redactHttpSpan(span: Span, req: IncomingMessage | ClientRequest): void {
  if (req instanceof IncomingMessage) {
    const target = redactUrl(req.url ?? '/');
    span.setAttribute('http.target', target);
    if (req.headers.host) span.setAttribute('http.url', `http://${req.headers.host}${target}`);
  } else {
    const target = redactUrl(req.path);
    span.setAttribute('http.target', target);
    span.setAttribute('http.url', `${req.protocol}//${req.host}${target}`);
  }
}

/**
 * Starts tracing for the process named `service` (OTEL_SERVICE_NAME overrides it) when the configuration asks
 * for it, before the process does any work. The SDK's packages are loaded only then.
 */
export async function startTracing(service: string, config: TracingConfig): Promise<Tracing> {
  const settings = tracingSettings(config);
  if (!settings.enabled) return { enabled: false };
  const [api, { Resource, envDetectorSync }, { BatchSpanProcessor }, { NodeTracerProvider }, { registerInstrumentations }, { HttpInstrumentation }, { PgInstrumentation }] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/instrumentation'),
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-pg'),
  ]);
  const { OTLPTraceExporter } = settings.protocol === 'http/json' ? await import('@opentelemetry/exporter-trace-otlp-http') : await import('@opentelemetry/exporter-trace-otlp-proto');
  const resource = Resource.default().merge(new Resource({ 'service.name': config.OTEL_SERVICE_NAME ?? service })).merge(envDetectorSync.detect());
  // The exporter reads its headers and timeout from the OTEL_* variables itself.
  const spanProcessor = new BatchSpanProcessor(new OTLPTraceExporter({ url: settings.endpoint }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  provider.register(); // the W3C propagator (OTEL_PROPAGATORS), AsyncLocalStorage context
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => PROBES.test(req.url ?? ''),
        requireParentforOutgoingSpans: true,
        requestHook: redactHttpSpan,
      }),
      new PgInstrumentation({ requireParentSpan: true }),
    ],
  });
  // Our modules are ES modules: `pg` and `http` were loaded by import before the instrumentations were
  // registered, so the require hook never saw them. Requiring them now hands the (cached) modules to the hook,
  // which patches their prototypes in place: the pools and servers made from them are traced from here on.
  const require = createRequire(import.meta.url);
  require('node:http');
  require('node:https');
  require('pg');
  require('pg-pool');
  const tracer = api.trace.getTracer('countersign');
  return {
    enabled: true,
    tracer,
    spanProcessor,
    resource,
    shutdown: () => provider.shutdown().catch(() => {}),
  };
}
