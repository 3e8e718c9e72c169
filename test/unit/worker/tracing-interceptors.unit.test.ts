import { describe, expect, it } from 'vitest';
import { TRACE_HEADER as SDK_TRACE_HEADER } from '@temporalio/interceptors-opentelemetry/lib/instrumentation.js';
import * as otel from '@temporalio/interceptors-opentelemetry/lib/workflow/index.js';
import { interceptors, TRACE_HEADER } from '../../../workflows/tracing-interceptors.ts';

/** The methods a class's instances have (its prototype's, constructor aside). */
const methodsOf = (c: { prototype: object }) => Object.getOwnPropertyNames(c.prototype).filter((n) => n !== 'constructor').sort();

describe('the workflow tracing interceptors, loaded only by a traced run', () => {
  it('read the header Temporal’s OpenTelemetry client interceptor writes', () => {
    expect(TRACE_HEADER).toBe(SDK_TRACE_HEADER);
  });

  it('expose exactly the methods of Temporal’s interceptors, as the run composed them before', () => {
    const i = interceptors();
    const [gate, inbound] = i.inbound!;
    expect([...Object.keys(gate!), ...Object.keys(inbound!)].sort()).toEqual(methodsOf(otel.OpenTelemetryInboundInterceptor));
    expect(Object.keys(i.outbound![0]!).sort()).toEqual(methodsOf(otel.OpenTelemetryOutboundInterceptor));
    expect(Object.keys(i.internals![0]!).sort()).toEqual(methodsOf(otel.OpenTelemetryInternalsInterceptor));
  });

  it('given a run started without a trace, when any interceptor is called, then it passes the input straight on', async () => {
    const i = interceptors();
    const input = { headers: {}, args: [] } as never;
    const seen: unknown[] = [];
    const next = (x: unknown) => { seen.push(x); return 'next'; };
    expect(await i.inbound![0]!.execute!(input, next as never)).toBe('next');
    const all = [i.inbound![1]!, i.outbound![0]!, i.internals![0]!] as Array<Record<string, (x: unknown, n: unknown) => unknown>>;
    let calls = 1;
    for (const part of all) for (const fn of Object.values(part)) { expect(fn(input, next)).toBe('next'); calls += 1; }
    expect(seen).toHaveLength(calls);
    expect(seen.every((x) => x === input)).toBe(true);
  });
});
