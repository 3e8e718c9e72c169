import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CountersignError } from '../../services/errors.ts';
import { createPool, withTenant } from '../../services/events/db.ts';
import { createKafkaSource } from '../../services/publisher/kafka.ts';
import { addPrincipal, api, eventually, freePort, stackEnv, startTestStack, type TestStack } from './harness.ts';
import { hostPort, TcpProxy, throughPort } from './tcp-proxy.ts';

// Keys are unique per run: workflow ids derive from (tenant, key), and the Temporal server outlives test databases.
const RUN = randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readyz(port: number): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(8_000) });
  return { status: res.status, body: await res.json() };
}

/** Every event id on the stack's topic, with how many times each was sent. */
async function onKafka(stack: TestStack): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  await createKafkaSource({ brokers: stackEnv().KAFKA_BROKERS.split(','), topic: stack.topic }).readToEnd((r) => {
    const id = r.headers['event_id']!;
    seen.set(id, (seen.get(id) ?? 0) + 1);
  });
  return seen;
}

async function eventIds(stack: TestStack): Promise<string[]> {
  return (await stack.db.query<{ event_id: string }>('SELECT event_id FROM events')).rows.map((r) => r.event_id);
}

/**
 * Every process (API, worker, publisher) reaches Postgres, Temporal and Kafka through TCP proxies this test
 * owns: closed at start-up (the dependency down), then opened; later cut again and again under load (the
 * dependency restarting, every connection reset). The shared servers themselves are never touched.
 */
describe('every process waits out its dependencies, at start-up and through restarts', () => {
  let stack: TestStack;
  let bot: { id: string; key: string };
  const env = stackEnv();
  let pgProxy: TcpProxy;
  let temporalProxy: TcpProxy;
  let kafkaProxy: TcpProxy;
  const ports = { api: 0, worker: 0, publisher: 0 };
  const decide = (amount: number, key: string) =>
    api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'pay-bot' }, action: { tool: 'payment_tool', operation: 'Refund', args: { order: key } }, context: { amount }, idempotency_key: `${key}/${RUN}` });
  const alive = () => [stack.api, stack.worker, stack.publisher].filter((p) => p.child.exitCode === null && p.child.signalCode === null).map((p) => p.name);

  beforeAll(async () => {
    pgProxy = new TcpProxy(await freePort(), hostPort(env.DATABASE_URL));
    temporalProxy = new TcpProxy(await freePort(), hostPort(env.TEMPORAL_ADDRESS));
    // Kafka's bootstrap goes through the proxy; the broker then advertises its own address, so only the
    // first connection (and so only "down at start-up") can be played through it.
    kafkaProxy = new TcpProxy(await freePort(), hostPort(env.KAFKA_BROKERS.split(',')[0]!));
    ports.api = await freePort();
    ports.worker = await freePort();
    ports.publisher = await freePort();
  });
  afterAll(async () => {
    await stack?.stop();
    await Promise.all([pgProxy?.close(), temporalProxy?.close(), kafkaProxy?.close()]);
  });

  it('starts with Postgres, Temporal and Kafka down, says which are down, and serves once they are up', async () => {
    const starting = startTestStack(
      { COUNTERSIGN_PORT: String(ports.api), COUNTERSIGN_WORKER_METRICS_PORT: String(ports.worker), COUNTERSIGN_PUBLISHER_METRICS_PORT: String(ports.publisher) },
      { processEnv: (e) => ({ ...e, DATABASE_URL: throughPort(e['DATABASE_URL']!, pgProxy.port), TEMPORAL_ADDRESS: temporalProxy.address, KAFKA_BROKERS: kafkaProxy.address }) },
    );
    const start: { failed: Error | null } = { failed: null };
    starting.catch((err: unknown) => { start.failed = err instanceof Error ? err : new Error(String(err)); });
    // While everything is down, each process is up and names what it waits for.
    const expectDown = { api: ['postgres', 'temporal'], worker: ['postgres', 'temporal'], publisher: ['kafka', 'postgres'] } as const;
    for (const [name, down] of Object.entries(expectDown) as Array<[keyof typeof ports, readonly string[]]>) {
      const r = await eventually(async () => {
        if (start.failed) throw start.failed;
        return await readyz(ports[name]);
      }, 90_000, `${name} /readyz while its dependencies are down`);
      expect(r.status, name).toBe(503);
      expect([...r.body.down].sort(), name).toEqual(down);
    }
    await sleep(3_000); // a few retries' worth: nobody gives up
    if (start.failed) throw start.failed;
    await Promise.all([pgProxy.open(), temporalProxy.open(), kafkaProxy.open()]);
    stack = await starting;
    for (const name of Object.keys(ports) as Array<keyof typeof ports>) {
      await eventually(async () => ((await readyz(ports[name])).status === 200 ? true : undefined), 60_000, `${name} ready`);
    }
    bot = await addPrincipal(stack, { name: 'pay-bot', kind: 'agent', roles: ['agent'] });
    const res = await decide(42, 'after-start');
    expect(res.status).toBe(200);
    expect(res.body.decision).toBe('ALLOW');
    await eventually(async () => ((await stack.db.query('SELECT 1 FROM events WHERE stream_id = $1 AND type = $2', [`run/${res.body.decision_id}`, 'ReceiptIssued'])).rowCount === 1 ? true : undefined), 60_000, 'the receipt');
    const ids = await eventIds(stack);
    await eventually(async () => {
      const seen = await onKafka(stack);
      return ids.every((id) => seen.has(id)) ? true : undefined;
    }, 60_000, 'every event on Kafka');
    const health = await fetch(`http://127.0.0.1:${ports.publisher}/healthz`).then((r) => r.json());
    expect(health).toMatchObject({ status: 'ok', role: 'leader' });
    const metrics = await fetch(`http://127.0.0.1:${ports.publisher}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/^countersign_publisher_lag_events \d+$/m);
    expect(metrics).toMatch(/^countersign_publisher_leader 1$/m);
    console.log(`attack start-with-dependencies-down: 3 attempts, ${3 - alive().length} got through`);
    expect(alive()).toHaveLength(3);
  });

  it('a pooled connection reset while checked out (a transaction waiting on something else) fails that transaction, not the process', async () => {
    const pool = createPool(throughPort(stack.dbUrl, pgProxy.port), 4);
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    const ATTEMPTS = 5;
    let failedAsDependency = 0;
    try {
      for (let i = 0; i < ATTEMPTS; i++) {
        const outcome = await withTenant(pool, 'default', async (c) => {
          await c.query('SELECT 1');
          pgProxy.cut(); // the restart lands while the transaction waits between two queries
          await sleep(300);
          await c.query('SELECT 1');
        }).then(() => 'committed', (err: unknown) => (err instanceof CountersignError && err.code === 'dependency_unavailable' ? 'dependency' : String(err)));
        if (outcome === 'dependency') failedAsDependency += 1;
      }
      // The pool serves again once Postgres answers.
      expect((await pool.query('SELECT 1 AS one')).rows[0]).toEqual({ one: 1 });
    } finally {
      process.off('uncaughtException', onUncaught);
      await pool.end();
    }
    console.log(`attack connection-reset-mid-transaction: ${ATTEMPTS} attempts, ${uncaught.length} got through`);
    expect(uncaught).toEqual([]);
    expect(failedAsDependency).toBe(ATTEMPTS);
  });

  it('rides out Postgres and Temporal restarts under load: every process still serves afterwards', async () => {
    expect(stack, 'the first test started the stack').toBeDefined();
    const acknowledged: string[] = [];
    let refused = 0;
    let stop = false;
    const load = async (lane: number) => {
      for (let i = 0; !stop; i++) {
        const res = await decide(10 + (i % 50), `load/${lane}/${i}`).catch(() => null);
        if (res?.status === 200) acknowledged.push(res.body.decision_id);
        else refused += 1;
      }
    };
    const cutsBefore = pgProxy.cuts + temporalProxy.cuts;
    const lanes = [load(0), load(1), load(2)];
    const ROUNDS = 6;
    for (let round = 0; round < ROUNDS; round++) {
      await sleep(2_500);
      pgProxy.cut();
      if (round % 2 === 1) temporalProxy.cut();
    }
    await sleep(2_500);
    stop = true;
    await Promise.all(lanes);
    const attempts = pgProxy.cuts + temporalProxy.cuts - cutsBefore;
    const dead = 3 - alive().length;
    expect(alive(), [stack.api.output(), stack.worker.output(), stack.publisher.output()].map((o) => o.slice(-2000)).join('\n---\n')).toHaveLength(3);

    // Afterwards: the API answers, the worker finishes every acknowledged run, the publisher drains the backlog.
    const after = await eventually(async () => {
      const r = await decide(7, 'after-restarts');
      return r.status === 200 ? r : undefined;
    }, 60_000, 'a decision after the restarts').catch((err: unknown) => {
      console.log(stack.api.output().slice(-4000));
      throw err;
    });
    acknowledged.push(after.body.decision_id);
    const unfinished = await eventually(async () => {
      const done = new Set((await stack.db.query<{ stream_id: string }>(`SELECT stream_id FROM events WHERE type = 'ReceiptIssued'`)).rows.map((r) => r.stream_id));
      const left = acknowledged.filter((id) => !done.has(`run/${id}`));
      return left.length === 0 ? left : undefined;
    }, 120_000, 'every acknowledged run finished').catch((err: unknown) => {
      console.log(stack.worker.output().slice(-4000));
      throw err;
    });
    const ids = await eventIds(stack);
    const missing = await eventually(async () => {
      const seen = await onKafka(stack);
      const left = ids.filter((id) => !seen.has(id));
      return left.length === 0 ? left : undefined;
    }, 120_000, 'every event on Kafka').catch((err: unknown) => {
      console.log(stack.publisher.output().slice(-4000));
      throw err;
    });
    for (const name of Object.keys(ports) as Array<keyof typeof ports>) {
      await eventually(async () => ((await readyz(ports[name])).status === 200 ? true : undefined), 60_000, `${name} ready again`);
    }
    console.log(`decisions acknowledged under restarts: ${acknowledged.length}, refused while a dependency was away: ${refused}`);
    console.log(`attack dependency-restarts-under-load: ${attempts} attempts, ${dead + unfinished.length + missing.length} got through`);
    expect(acknowledged.length).toBeGreaterThan(1);
    expect(dead + unfinished.length + missing.length).toBe(0);
  }, 400_000);
});
