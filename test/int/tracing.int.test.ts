import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { createKafkaSource } from '../../services/publisher/kafka.ts';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { BUNDLER_OPTIONS, WORKFLOW_INTERCEPTOR_MODULES } from '../../services/worker/workflows-path.ts';
import { addPrincipal, api, eventually, ROOT, startTestStack, type TestStack } from './harness.ts';
import { jaegerBinary, startJaeger, type JaegerSpan } from './jaeger.ts';

// Jaeger is built from the Go module proxy by services/stack/otlp-receiver.sh, which make test runs first.
const bin = jaegerBinary();
if (!bin && process.env['CI']) throw new Error('the OTLP receiver is missing: run bash services/stack/otlp-receiver.sh ensure');
const suite = bin ? describe : describe.skip;

const RUN = Date.now().toString(36);
const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const refund = (amount: number, key: string) => ({
  agent: { id: 'trace-bot' },
  action: { tool: 'payment_tool', operation: 'Refund', args: { order: 'T-1' } },
  context: { amount },
  idempotency_key: `${key}-${RUN}`,
});

/** The DecisionRequested record of a decision on the stack's topic, with its headers. */
async function requestedRecord(stack: TestStack, decisionId: string): Promise<Record<string, string> | undefined> {
  let found: Record<string, string> | undefined;
  await createKafkaSource({ brokers: stack.env['KAFKA_BROKERS']!.split(','), topic: stack.topic }).readToEnd((r) => {
    if (r.headers['type'] !== 'DecisionRequested' || r.value === null) return;
    const e = JSON.parse(r.value) as { data: { decision_id: string } };
    if (e.data.decision_id === decisionId) found = r.headers;
  });
  return found;
}

suite('OpenTelemetry traces from the agent\'s request to Kafka, in a real OTLP receiver (Jaeger)', () => {
  let jaeger: Awaited<ReturnType<typeof startJaeger>>;
  let stack: TestStack;
  let bot: { key: string };
  beforeAll(async () => {
    jaeger = await startJaeger(bin!);
    stack = await startTestStack({
      OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpUrl,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      // Export within a fraction of a second, so the test need not wait for the default 5 s batches.
      OTEL_BSP_SCHEDULE_DELAY: '200',
      // A run's workflow span ends (and is exported) when the run closes: an ALLOW closes after its outcome window.
      COUNTERSIGN_OUTCOME_WINDOW: '2s',
    });
    bot = await addPrincipal(stack, { name: 'trace-bot', kind: 'agent', roles: ['agent'] });
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
    await jaeger?.stop();
  });

  it('one decision asked with a traceparent: the API, workflow, activities, Postgres and Kafka publish spans share its trace, which the decision records', async () => {
    const traceId = hex(16);
    const parentSpan = hex(8);
    const res = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', refund(120, 'traced'), { traceparent: `00-${traceId}-${parentSpan}-01` });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ decision: 'ALLOW', trace_id: traceId });
    const id = res.body.decision_id as string;

    // The decision records the trace in its signed start event, and GET shows it.
    await eventually(async () => ((await api({ url: stack.url, key: bot.key }, 'GET', `/v1/decisions/${id}/receipt`)).status === 200 ? true : undefined), 60_000, 'the receipt');
    const got = await api({ url: stack.url, key: bot.key }, 'GET', `/v1/decisions/${id}`);
    expect(got.body.trace_id).toBe(traceId);
    const requested = (await stack.db.query<{ data: { trace?: { trace_id: string; span_id: string } } }>(
      "SELECT data FROM events WHERE type = 'DecisionRequested' AND data->>'decision_id' = $1", [id])).rows[0]!;
    expect(requested.data.trace?.trace_id).toBe(traceId);

    const has = (spans: JaegerSpan[], service: string, op: RegExp) => spans.some((s) => s.service === service && op.test(s.operationName));
    let last: JaegerSpan[] = [];
    const spans = await eventually(async () => {
      const s = (last = await jaeger.trace(traceId));
      return has(s, 'countersign-api', /^POST \/v1\/decisions$/) && has(s, 'countersign-api', /^StartWorkflow:decisionWorkflow$/)
        && has(s, 'countersign-worker', /^RunWorkflow:decisionWorkflow$/) && has(s, 'countersign-worker', /^StartActivity:/) && has(s, 'countersign-worker', /^RunActivity:/)
        && has(s, 'countersign-worker', /^pg\.query/) && has(s, 'countersign-api', /^pg\.query/)
        && has(s, 'countersign-publisher', /publish$/) ? s : undefined;
    }, 60_000, 'the decision\'s spans in Jaeger').catch((err: unknown) => {
      throw new Error(`${String(err)}; spans found: ${last.map((x) => `${x.service} ${x.operationName}`).join(', ')}`);
    });
    expect(new Set(spans.map((s) => s.traceID))).toEqual(new Set([traceId]));
    // The API's request span continues the agent's span; the recorded span is the API's request span.
    const request = spans.find((s) => s.service === 'countersign-api' && s.operationName === 'POST /v1/decisions')!;
    expect(request.parents).toContain(parentSpan);
    expect(requested.data.trace?.span_id).toBe(request.spanID);
    // The run's workflow span descends from the API's start, and its activities from the workflow.
    const byId = new Map(spans.map((s) => [s.spanID, s]));
    const ancestors = (s: JaegerSpan): JaegerSpan[] => s.parents.flatMap((p) => (byId.has(p) ? [byId.get(p)!, ...ancestors(byId.get(p)!)] : []));
    const activity = spans.find((s) => s.service === 'countersign-worker' && s.operationName.startsWith('RunActivity:'))!;
    expect(ancestors(activity).map((s) => s.operationName)).toEqual(expect.arrayContaining(['StartActivity:appendRunEvents', 'RunWorkflow:decisionWorkflow', 'StartWorkflow:decisionWorkflow', 'POST /v1/decisions']));
    // Postgres: the activity's queries are its children.
    expect(spans.some((s) => s.service === 'countersign-worker' && s.operationName.startsWith('pg.query') && ancestors(s).includes(activity))).toBe(true);
    // No secret reaches a span: the request's URL is there, its bearer key is not.
    expect(JSON.stringify(spans)).not.toContain(bot.key);

    // The DecisionRequested record on Kafka carries the publish span's W3C context, in the same trace.
    const headers = await eventually(() => requestedRecord(stack, id), 60_000, 'the DecisionRequested record');
    expect(headers['traceparent']).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    const publish = spans.find((s) => s.service === 'countersign-publisher')!;
    expect(publish.parents).toContain(request.spanID);

    // The traced run replays against today's code: the OpenTelemetry interceptors, loaded only by a run whose
    // start carries a trace (workflows/tracing-interceptors.ts), load the same way when a worker replays it.
    const connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
    try {
      const history = await new Client({ connection }).workflow.getHandle(workflowIdFor('default', id)).fetchHistory();
      expect(JSON.stringify(history.events![0])).toContain('_tracer-data');
      await Worker.runReplayHistory({ workflowsPath: path.join(ROOT, 'workflows', 'index.ts'), bundlerOptions: BUNDLER_OPTIONS, interceptors: { workflowModules: WORKFLOW_INTERCEPTOR_MODULES } }, history, id);
    } finally {
      await connection.close();
    }
  }, 180_000);

  it('a decision asked without a traceparent records the trace the API started for it', async () => {
    const res = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', refund(80, 'untraced'));
    expect(res.status).toBe(200);
    const traceId = res.body.trace_id as string;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    const spans = await eventually(async () => {
      const s = await jaeger.trace(traceId);
      return s.some((x) => x.service === 'countersign-worker') ? s : undefined;
    }, 60_000, 'the API-started trace in Jaeger');
    expect(spans.some((s) => s.service === 'countersign-api' && s.parents.length === 0)).toBe(true);
  }, 120_000);

  it('attack forged-traceparent: malformed or all-zero traceparents are never recorded; the API starts a trace of its own', async () => {
    const forged = [
      `00-${'0'.repeat(32)}-${hex(8)}-01`, `00-${hex(16)}-${'0'.repeat(16)}-01`, `ff-${hex(16)}-${hex(8)}-01`,
      `00-${hex(16).toUpperCase()}-${hex(8)}-01`, `00-${hex(16)}-${hex(8)}-01-extra`, `00-${hex(15)}-${hex(8)}-01`,
      'x'.repeat(200), `00-${hex(16)}-${hex(8)}`,
    ];
    let through = 0;
    for (const [i, tp] of forged.entries()) {
      const res = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', refund(10 + i, `forged-${i}`), { traceparent: tp });
      expect(res.status).toBe(200);
      const recorded = res.body.trace_id as string;
      expect(recorded).toMatch(/^(?!0{32})[0-9a-f]{32}$/);
      if (tp.includes(recorded)) through += 1;
    }
    console.log(`attack forged-traceparent: ${forged.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 120_000);
});
