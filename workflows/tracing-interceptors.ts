// The workflow's OpenTelemetry interceptors (Temporal's own), bundled with the workflows: not a workflow.
// A run traces only when its start carries a trace (the API's client interceptor puts the W3C context in the
// start's headers when the API exports traces). Every other run, and every history recorded before tracing,
// runs with the interceptors passing straight through: no spans, no sink calls, the same commands.
import type { Next, WorkflowInboundCallsInterceptor, WorkflowInterceptors, WorkflowExecuteInput } from '@temporalio/workflow';
import { OpenTelemetryInboundInterceptor, OpenTelemetryInternalsInterceptor, OpenTelemetryOutboundInterceptor } from '@temporalio/interceptors-opentelemetry/lib/workflow/index.js';
import { TRACE_HEADER } from '@temporalio/interceptors-opentelemetry/lib/instrumentation.js';

type AnyNext = (input: unknown) => unknown;

/** `inner`'s interceptor methods, each passing straight to `next` while the run is not traced. */
function whenTraced<T extends object>(inner: T, traced: () => boolean): T {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return (input: unknown, next: AnyNext) => (traced() ? (v as (i: unknown, n: AnyNext) => unknown).call(target, input, next) : next(input));
    },
  });
}

export const interceptors = (): WorkflowInterceptors => {
  // Per run: the factory is called once for each workflow execution.
  let traced = false;
  const isTraced = () => traced;
  const inbound = new OpenTelemetryInboundInterceptor();
  const gate: WorkflowInboundCallsInterceptor = {
    execute(input: WorkflowExecuteInput, next: Next<WorkflowInboundCallsInterceptor, 'execute'>) {
      traced = input.headers[TRACE_HEADER] !== undefined;
      return traced ? inbound.execute(input, next) : next(input);
    },
  };
  return {
    inbound: [gate, whenTraced<WorkflowInboundCallsInterceptor>({
      handleSignal: inbound.handleSignal?.bind(inbound),
      handleUpdate: inbound.handleUpdate?.bind(inbound),
      validateUpdate: inbound.validateUpdate?.bind(inbound),
      handleQuery: inbound.handleQuery?.bind(inbound),
    }, isTraced)],
    outbound: [whenTraced(new OpenTelemetryOutboundInterceptor(), isTraced)],
    internals: [whenTraced(new OpenTelemetryInternalsInterceptor(), isTraced)],
  };
};
