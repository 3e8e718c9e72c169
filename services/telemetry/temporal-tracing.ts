import type { ClientInterceptors } from '@temporalio/client';
import type { InjectedSinks, WorkerOptions } from '@temporalio/worker';
import type { OpenTelemetryWorkflowExporter } from '@temporalio/interceptors-opentelemetry';
import type { Tracing } from './tracing.ts';

type WorkflowSinks = InjectedSinks<{ exporter: OpenTelemetryWorkflowExporter }>;

/**
 * What a worker adds for tracing: the workflow interceptor modules (when it bundles the sources itself), and,
 * when it exports traces, Temporal's activity interceptor (each activity a span, a child of the workflow's) and
 * the sink the workflow's spans leave the sandbox through. The sink is always registered: a run started with a
 * trace by an API that exports traces, on a worker that does not, has its workflow spans dropped here quietly.
 */
export async function workerTracing(tracing: Tracing, workflowModules: string[]): Promise<Pick<WorkerOptions, 'interceptors' | 'sinks'>> {
  if (!tracing.enabled) {
    const sinks: WorkflowSinks = { exporter: { export: { fn: () => {} } } };
    return { interceptors: { workflowModules }, sinks };
  }
  const { OpenTelemetryActivityInboundInterceptor, OpenTelemetryActivityOutboundInterceptor, makeWorkflowExporter } = await import('@temporalio/interceptors-opentelemetry');
  const sinks: WorkflowSinks = { exporter: makeWorkflowExporter(tracing.spanProcessor, tracing.resource) };
  return {
    interceptors: {
      workflowModules,
      activity: [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx), outbound: new OpenTelemetryActivityOutboundInterceptor(ctx) })],
    },
    sinks,
  };
}

/** The Temporal client's interceptors: a traced process passes its trace into the workflows it starts and messages. */
export async function clientTracing(tracing: Tracing): Promise<ClientInterceptors | undefined> {
  if (!tracing.enabled) return undefined;
  const { OpenTelemetryWorkflowClientInterceptor } = await import('@temporalio/interceptors-opentelemetry');
  return { workflow: [new OpenTelemetryWorkflowClientInterceptor()] };
}
