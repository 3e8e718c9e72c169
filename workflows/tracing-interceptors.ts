// The workflow's OpenTelemetry interceptors (Temporal's own), bundled with the workflows: not a workflow.
// A run traces only when its start carries a trace (the API's client interceptor puts the W3C context in the
// start's headers when the API exports traces). Every other run, and every history recorded before tracing,
// runs with the interceptors passing straight through: no spans, no sink calls, the same commands.
//
// This module is evaluated afresh for every run the worker starts (the SDK gives each run its own module cache,
// except for preloaded modules, which it freezes: the OpenTelemetry modules keep their tracer provider and the
// runtime globals they patch in per-run state, so they cannot be shared). Evaluating them, and building a tracer
// provider, was about a quarter of an untraced run's CPU in the workflow thread; they are now required only
// by a run whose start carries a trace, when its execution starts, before any command.
import type { Next, WorkflowInboundCallsInterceptor, WorkflowInterceptors, WorkflowExecuteInput, WorkflowInternalsInterceptor, WorkflowOutboundCallsInterceptor } from '@temporalio/workflow';
import type * as OtelWorkflow from '@temporalio/interceptors-opentelemetry/lib/workflow/index.js';

/**
 * The header Temporal's OpenTelemetry client interceptor writes (`TRACE_HEADER` of
 * @temporalio/interceptors-opentelemetry/lib/instrumentation.js, whose module loads OpenTelemetry too; a unit
 * test holds the two equal).
 */
export const TRACE_HEADER = '_tracer-data';

type AnyNext = (input: unknown) => unknown;
type Traced = {
  inbound: OtelWorkflow.OpenTelemetryInboundInterceptor;
  outbound: OtelWorkflow.OpenTelemetryOutboundInterceptor;
  internals: OtelWorkflow.OpenTelemetryInternalsInterceptor;
};

/** The OpenTelemetry interceptors, loaded now: webpack's synchronous require, so the run's commands keep their order. */
function tracedInterceptors(): Traced {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- synchronous and lazy on purpose (see above)
  const otel = require('@temporalio/interceptors-opentelemetry/lib/workflow/index.js') as typeof OtelWorkflow;
  return { inbound: new otel.OpenTelemetryInboundInterceptor(), outbound: new otel.OpenTelemetryOutboundInterceptor(), internals: new otel.OpenTelemetryInternalsInterceptor() };
}

/** The methods `names` of the traced interceptor `pick` chooses, each passing straight to `next` while the run is not traced. */
function whenTraced<T extends object>(names: ReadonlyArray<keyof T & string>, traced: () => Traced | null, pick: (t: Traced) => T): T {
  const out: Record<string, (input: unknown, next: AnyNext) => unknown> = {};
  for (const name of names) {
    out[name] = (input, next) => {
      const t = traced();
      if (!t) return next(input);
      const inner = pick(t);
      const method = (inner as Record<string, unknown>)[name];
      return typeof method === 'function' ? (method as (i: unknown, n: AnyNext) => unknown).call(inner, input, next) : next(input);
    };
  }
  return out as T;
}

const INBOUND = ['handleSignal', 'handleUpdate', 'validateUpdate', 'handleQuery'] as const;
// Exactly the methods Temporal's interceptors define (a method they lack stays absent, as it was).
const OUTBOUND = ['scheduleActivity', 'scheduleLocalActivity', 'startNexusOperation', 'startChildWorkflowExecution', 'continueAsNew', 'signalWorkflow', 'getLogAttributes', 'getMetricTags'] as const;
const INTERNALS = ['dispose'] as const;

export const interceptors = (): WorkflowInterceptors => {
  // Per run: the factory is called once for each workflow execution.
  let traced: Traced | null = null;
  const current = () => traced;
  const gate: WorkflowInboundCallsInterceptor = {
    execute(input: WorkflowExecuteInput, next: Next<WorkflowInboundCallsInterceptor, 'execute'>) {
      if (input.headers[TRACE_HEADER] === undefined) return next(input);
      traced = tracedInterceptors();
      return traced.inbound.execute(input, next);
    },
  };
  return {
    inbound: [gate, whenTraced<WorkflowInboundCallsInterceptor>(INBOUND, current, (t) => t.inbound)],
    outbound: [whenTraced<WorkflowOutboundCallsInterceptor>(OUTBOUND, current, (t) => t.outbound)],
    internals: [whenTraced<WorkflowInternalsInterceptor>(INTERNALS, current, (t) => t.internals)],
  };
};
