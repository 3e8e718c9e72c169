import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Replay } from '../../services/audit/replay.ts';
import { createKafkaSource } from '../../services/publisher/kafka.ts';
import { loadPublicKeys } from '../../services/receipts/keyring.ts';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { api, eventually, startProcess, startTestStack, stackEnv, freePort, type TestStack } from './harness.ts';

// Keys are unique per run: decision and workflow ids derive from them, and Temporal outlives test databases.
const RUN = Date.now().toString(36);
const refund = (amount: number, key?: string) => ({
  agent: { id: 'support-bot' },
  action: { tool: 'payment_tool', operation: 'Refund', args: { order: 'A-17' } },
  context: { amount },
  ...(key ? { idempotency_key: `${key}-${RUN}` } : {}),
});

async function countEvents(stack: TestStack): Promise<number> {
  return Number((await stack.db.query<{ n: string }>('SELECT count(*)::text AS n FROM events')).rows[0]!.n);
}

/** The event count once earlier runs have finished writing (their receipts land after the API answers). */
async function settledCount(stack: TestStack): Promise<number> {
  let last = -1;
  for (;;) {
    const n = await countEvents(stack);
    if (n === last) return n;
    last = n;
    await new Promise((r) => setTimeout(r, 700));
  }
}

async function replayFromKafka(stack: TestStack) {
  const replay = new Replay({ keys: await loadPublicKeys(stack.env['COUNTERSIGN_KEYS_DIR']!) });
  await createKafkaSource({ brokers: stackEnv().KAFKA_BROKERS.split(','), topic: stack.topic }).readToEnd((r) => {
    replay.add({ value: r.value, where: `${r.partition}@${r.offset}` });
  });
  return replay.finish();
}

describe('one decision, end to end, through the real Temporal, Postgres and Kafka', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers the decision, and the receipt rebuilt from Kafka alone carries the same decision', async () => {
    const res = await api(stack, 'POST', '/v1/decisions', refund(120, 'e2e-allow-1'));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ decision: 'ALLOW', status: 'final', matched_rule: 'small-refunds' });
    const id = res.body.decision_id as string;

    const report = await eventually(async () => {
      const r = await replayFromKafka(stack);
      return r.receipts.some((s) => s.receipt.decision_id === id) ? r : undefined;
    }, 60_000, 'the receipt on Kafka');
    expect(report.divergences).toEqual([]);
    const receipt = report.receipts.find((s) => s.receipt.decision_id === id)!.receipt;
    expect(receipt.decision).toBe(res.body.decision);
    expect(receipt.matched_rule).toBe(res.body.matched_rule);
    expect(receipt.snapshot_hash).toBe(res.body.snapshot_hash);
    expect(report.re_evaluated).toBeGreaterThanOrEqual(1);
  });

  it('the same idempotency key twice gives one workflow and one set of events', async () => {
    const first = await api(stack, 'POST', '/v1/decisions', refund(42, 'e2e-idem-1'));
    const second = await api(stack, 'POST', '/v1/decisions', refund(42, 'e2e-idem-1'));
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    // The first answer is this request's own; the repeat says it was answered from the earlier one.
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    const id = first.body.decision_id as string;

    await eventually(async () => {
      const n = (await stack.db.query('SELECT 1 FROM events WHERE stream_id = $1 AND type = $2', [`run/${id}`, 'ReceiptIssued'])).rowCount;
      return n === 1 ? true : undefined;
    }, 30_000, 'the receipt event');
    // A third ask after the run closed is answered from the record.
    const third = await api(stack, 'POST', '/v1/decisions', refund(42, 'e2e-idem-1'));
    expect(third.body).toEqual(first.body);
    expect(third.headers.get('idempotent-replayed')).toBe('true');

    const events = await stack.db.query<{ type: string }>('SELECT type FROM events WHERE stream_id = $1 ORDER BY stream_version', [`run/${id}`]);
    expect(events.rows.map((r) => r.type)).toEqual(['DecisionRequested', 'PolicyEvaluated', 'DecisionFinalized', 'ReceiptIssued']);

    const connection = await Connection.connect({ address: stackEnv().TEMPORAL_ADDRESS });
    try {
      const client = new Client({ connection });
      const runs = await eventually(async () => {
        const found = [];
        for await (const w of client.workflow.list({ query: `WorkflowId = '${workflowIdFor('default', id)}'` })) found.push(w);
        return found.length > 0 ? found : undefined;
      }, 20_000, 'visibility of the workflow');
      expect(runs).toHaveLength(1);
    } finally {
      await connection.close();
    }
  });

  it('refuses a reused idempotency key with a different request (422), writing nothing', async () => {
    await api(stack, 'POST', '/v1/decisions', refund(10, 'e2e-idem-2'));
    await eventually(async () => ((await stack.db.query('SELECT 1 FROM idempotency_keys WHERE idempotency_key = $1', [`e2e-idem-2-${RUN}`])).rowCount ? true : undefined));
    const before = await settledCount(stack);
    const res = await api(stack, 'POST', '/v1/decisions', refund(11, 'e2e-idem-2'));
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ code: 'idempotency_mismatch', errors: [{ path: 'idempotency_key' }] });
    expect(await countEvents(stack)).toBe(before);
  });

  it.each([
    ['malformed JSON', '{"agent": {', 400, 'bad_request', undefined],
    ['an unknown field', { ...refund(1), surprise: true }, 400, 'validation_failed', 'body.surprise'],
    ['an unknown nested field', { ...refund(1), action: { tool: 'x', nope: 1 } }, 400, 'validation_failed', 'body.action.nope'],
    ['a missing required field', { agent: { id: 'a' } }, 400, 'validation_failed', 'body.action'],
    ['a wrong type', { ...refund(1), agent: { id: 7 } }, 400, 'validation_failed', 'body.agent.id'],
  ])('refuses %s with problem+json naming the field, and writes nothing', async (_name, body, status, code, field) => {
    const before = await settledCount(stack);
    const res = await api(stack, 'POST', '/v1/decisions', body);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(res.body.code).toBe(code);
    if (field) expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(field);
    expect(await countEvents(stack)).toBe(before);
  });

  it('refuses a missing or wrong key with 401 before looking at the body', async () => {
    const noKey = await fetch(`${stack.url}/v1/decisions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    expect(noKey.status).toBe(401);
    const badKey = await api({ url: stack.url, key: 'cs_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' }, 'POST', '/v1/decisions', refund(1));
    expect(badKey.status).toBe(401);
  });

  it('answers 503 naming the dependency when Temporal or Postgres is down, never a made-up decision', async () => {
    const deadPort = String(await freePort());
    const port = String(await freePort());
    const noTemporal = await startProcess('api-no-temporal', 'services/api/main.ts', { ...stack.env, COUNTERSIGN_PORT: port, TEMPORAL_ADDRESS: `127.0.0.1:${deadPort}`, COUNTERSIGN_LOG_LEVEL: 'info' }, /api listening/);
    try {
      const before = await settledCount(stack);
      const res = await api({ url: `http://127.0.0.1:${port}`, key: stack.key }, 'POST', '/v1/decisions', refund(5));
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ code: 'dependency_unavailable', dependency: 'temporal' });
      const ready = await api({ url: `http://127.0.0.1:${port}`, key: stack.key }, 'GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.down).toEqual(['temporal']);
      expect(await countEvents(stack)).toBe(before);
    } finally {
      await noTemporal.stop();
    }
    const port2 = String(await freePort());
    const noPostgres = await startProcess('api-no-postgres', 'services/api/main.ts', { ...stack.env, COUNTERSIGN_PORT: port2, DATABASE_URL: `postgres://nobody:nothing@127.0.0.1:${deadPort}/none`, COUNTERSIGN_LOG_LEVEL: 'info' }, /api listening/);
    try {
      const res = await api({ url: `http://127.0.0.1:${port2}`, key: stack.key }, 'POST', '/v1/decisions', refund(5));
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ code: 'dependency_unavailable', dependency: 'postgres' });
    } finally {
      await noPostgres.stop();
    }
  });
});
