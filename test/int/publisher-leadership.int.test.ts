import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaSource } from '../../services/publisher/kafka.ts';
import { addPrincipal, api, eventually, freePort, stackEnv, startProcess, startTestStack, type AppProcess, type TestStack } from './harness.ts';

const RUN = randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two publishers on one log and topic: one leads (Postgres advisory lock), the other stands by; the leader is
 * killed with SIGKILL and the standby takes over. In steady state (every batch's checkpoint written before the
 * kill) every event is on Kafka exactly once.
 */
describe('publisher leadership', () => {
  let stack: TestStack;
  let second: AppProcess;
  let bot: { id: string; key: string };
  const ports: number[] = [];
  const role = async (port: number): Promise<string | undefined> => {
    try {
      return ((await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(3_000) }).then((r) => r.json())) as { role?: string }).role;
    } catch {
      return undefined;
    }
  };
  const decide = (amount: number, key: string) =>
    api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'pay-bot' }, action: { tool: 'payment_tool', operation: 'Refund', args: { order: key } }, context: { amount }, idempotency_key: `${key}/${RUN}` });

  beforeAll(async () => {
    ports.push(await freePort(), await freePort());
    stack = await startTestStack({ COUNTERSIGN_PUBLISHER_METRICS_PORT: String(ports[0]) });
    second = await startProcess('publisher-2', 'services/publisher/main.ts', { ...stack.env, COUNTERSIGN_LOG_LEVEL: 'info', COUNTERSIGN_PUBLISHER_METRICS_PORT: String(ports[1]) }, /publisher starting/);
    bot = await addPrincipal(stack, { name: 'pay-bot', kind: 'agent', roles: ['agent'] });
  });
  afterAll(async () => {
    await second?.stop();
    await stack?.stop();
  });

  /** Runs `count` decisions to their receipts, then waits until Kafka has every event and the checkpoint is at the end. */
  async function steadyLoad(count: number, tag: string): Promise<void> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const res = await decide(5 + i, `${tag}/${i}`);
      expect(res.status).toBe(200);
      ids.push(res.body.decision_id);
    }
    await eventually(async () => {
      const n = (await stack.db.query(`SELECT 1 FROM events WHERE type = 'ReceiptIssued' AND stream_id = ANY($1)`, [ids.map((id) => `run/${id}`)])).rowCount;
      return n === ids.length ? true : undefined;
    }, 60_000, 'every receipt');
    await eventually(async () => {
      const r = await stack.db.query<{ left: string }>(
        `SELECT count(*)::text AS left FROM events e, publisher_checkpoints c WHERE c.name = $1 AND (e.tx_id, e.position) > (c.tx_id, c.position)`, [`kafka:${stack.topic}`]);
      return r.rows[0]?.left === '0' ? true : undefined;
    }, 60_000, 'the checkpoint at the end of the log');
  }

  async function kafkaCounts(): Promise<Map<string, number>> {
    const seen = new Map<string, number>();
    await createKafkaSource({ brokers: stackEnv().KAFKA_BROKERS.split(','), topic: stack.topic }).readToEnd((r) => {
      const id = r.headers['event_id']!;
      seen.set(id, (seen.get(id) ?? 0) + 1);
    });
    return seen;
  }

  async function exactlyOnce(): Promise<{ events: number; wrong: number }> {
    const ids = (await stack.db.query<{ event_id: string }>('SELECT event_id FROM events')).rows.map((r) => r.event_id);
    const seen = await kafkaCounts();
    const wrong = ids.filter((id) => seen.get(id) !== 1).length + [...seen.keys()].filter((id) => !ids.includes(id)).length;
    return { events: ids.length, wrong };
  }

  it('one leads, the other stands by; SIGKILL of the leader hands over; every event is on Kafka exactly once', async () => {
    const roles = await eventually(async () => {
      const r = await Promise.all(ports.map(role));
      return r.filter((x) => x === 'leader').length === 1 && r.filter((x) => x === 'standby').length === 1 ? r : undefined;
    }, 30_000, 'one leader and one standby');
    const leaderIndex = roles.indexOf('leader');
    const leader = leaderIndex === 0 ? stack.publisher : second;
    const standbyPort = ports[1 - leaderIndex]!;

    await steadyLoad(15, 'before');
    const before = await exactlyOnce();
    console.log(`attack two-publishers-steady-state: ${before.events} attempts, ${before.wrong} got through`);
    expect(before.wrong).toBe(0);

    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    await eventually(async () => ((await role(standbyPort)) === 'leader' ? true : undefined), 30_000, 'the standby taking the lead');
    console.log(`standby took the lead ${Date.now() - killedAt} ms after the leader was killed`);

    await steadyLoad(15, 'after');
    await sleep(1_000); // anything a second leader would send
    const after = await exactlyOnce();
    console.log(`attack two-publishers-after-takeover: ${after.events} attempts, ${after.wrong} got through`);
    expect(after.wrong).toBe(0);
    const metrics = await fetch(`http://127.0.0.1:${standbyPort}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/^countersign_publisher_leader 1$/m);
    expect(metrics).toMatch(/^countersign_publisher_lag_events 0$/m);
  }, 300_000);

  it('a leader killed after Kafka committed its batch and before its checkpoint write: the next leader sends nothing twice', async () => {
    await Promise.all([stack.publisher.stop(), second.stop()]);
    const crashing = await startProcess('publisher-crash', 'services/publisher/main.ts', { ...stack.env, COUNTERSIGN_LOG_LEVEL: 'info', COUNTERSIGN_CRASH_AT: 'after-kafka-commit' }, /publisher starting/);
    const exited = new Promise<void>((resolve) => { if (crashing.child.exitCode !== null || crashing.child.signalCode !== null) resolve(); else crashing.child.once('exit', () => resolve()); });
    for (let i = 0; i < 5; i++) expect((await decide(7 + i, `crash/${i}`)).status).toBe(200);
    await exited;
    expect(crashing.child.signalCode).toBe('SIGKILL');
    // The Postgres checkpoint is behind what Kafka holds: a publisher resuming from it alone would send again.
    const behind = await stack.db.query<{ left: string }>(
      `SELECT count(*)::text AS left FROM events e, publisher_checkpoints c WHERE c.name = $1 AND (e.tx_id, e.position) > (c.tx_id, c.position)`, [`kafka:${stack.topic}`]);
    expect(Number(behind.rows[0]?.left)).toBeGreaterThan(0);

    second = await startProcess('publisher-3', 'services/publisher/main.ts', { ...stack.env, COUNTERSIGN_LOG_LEVEL: 'info' }, /publisher starting/);
    await steadyLoad(5, 'after-crash');
    await sleep(1_000);
    const after = await exactlyOnce();
    console.log(`attack resend-after-leader-crash: ${after.events} attempts, ${after.wrong} got through`);
    expect(after.wrong).toBe(0);
  }, 300_000);
});
