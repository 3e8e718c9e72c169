import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PublicKeySet } from '../../schemas/receipt.ts';
import { createKafkaSource } from '../../services/publisher/kafka.ts';
import { verifyReceipt } from '../../services/receipts/verify.ts';
import { activateYaml, addPrincipal, api, eventually, freePort, stackEnv, startProcess, startTestStack, type AppProcess, type TestStack } from './harness.ts';

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: multi-instance, name: Multi-instance }
scope: { level: tenant }
rules:
  - name: changes-need-ops
    match: { tool: change_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [ops], quorum: 1, timeout: 1h }
  - name: reads
    match: { tool: read_tool }
    decision: ALLOW
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a client was told: a decision it can act on. */
type Acknowledged = { id: string; decision: string; via: string };

/**
 * Two APIs, two workers and two publishers on one log, topic and task queue, under a steady load of decisions
 * and approvals. One of each is killed with SIGKILL (the killed publisher comes back, as a supervisor would
 * restart it), then the other publisher. A client whose API dies retries on the other with the same
 * idempotency key, as a load balancer would. Afterwards: every acknowledged decision has a verified receipt
 * saying what the client was told, every stream is whole, and every event is on Kafka exactly once.
 */
describe('several of every process', () => {
  let stack: TestStack;
  let api2: AppProcess, worker2: AppProcess, publisher2: AppProcess;
  let publisher3: AppProcess | undefined;
  let url2 = '';
  let bot: { id: string; key: string }, ops: { id: string; key: string };

  beforeAll(async () => {
    stack = await startTestStack();
    await activateYaml(stack, POLICY);
    bot = await addPrincipal(stack, { name: 'multi-bot', kind: 'agent', roles: ['agent'] });
    ops = await addPrincipal(stack, { name: 'Olga', roles: ['approver'], groups: ['ops'] });
    const port = await freePort();
    url2 = `http://127.0.0.1:${port}`;
    [api2, worker2, publisher2] = await Promise.all([
      startProcess('api-2', 'services/api/main.ts', { ...stack.env, COUNTERSIGN_PORT: String(port), COUNTERSIGN_LOG_LEVEL: 'info' }, /api listening/),
      stack.startWorker(),
      startProcess('publisher-2', 'services/publisher/main.ts', { ...stack.env, COUNTERSIGN_LOG_LEVEL: 'info' }, /publisher starting/),
    ]);
  }, 180_000);
  afterAll(async () => {
    await Promise.all([api2?.stop(), worker2?.stop(), publisher2?.stop(), publisher3?.stop()]);
    await stack?.stop();
  });

  it('kill -9 of one API, one worker and one publisher, then of the other publisher: nothing acknowledged is lost, nothing is sent twice', async () => {
    const urls = [stack.url, url2];
    const down = new Set<string>();
    /** One call through a "load balancer": the first API that answers, the same body (and so key) on a retry. */
    const call = async (who: { key: string }, method: string, route: string, body: unknown, start: number) => {
      for (let attempt = 0; attempt < 20; attempt++) {
        const url = urls[(start + attempt) % urls.length]!;
        if (down.has(url)) continue;
        try {
          return { ...(await api({ url, key: who.key }, method, route, body)), via: url };
        } catch {
          await sleep(100); // connection refused or reset: the other API
        }
      }
      throw new Error(`no API answered ${method} ${route}`);
    };

    const acknowledged: Acknowledged[] = [];
    const failures: string[] = [];
    let stop = false;
    let n = 0;
    const client = async (lane: number) => {
      while (!stop) {
        const i = (n += 1);
        const tool = i % 3 === 0 ? 'change_tool' : 'read_tool';
        const body = { agent: { id: 'multi-bot' }, action: { tool, args: { i } }, idempotency_key: `multi/${i}` };
        const res = await call(bot, 'POST', '/v1/decisions', body, i + lane);
        if (res.status !== 200) {
          failures.push(`decision ${i}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
          continue;
        }
        if (tool === 'read_tool') {
          acknowledged.push({ id: res.body.decision_id, decision: res.body.decision, via: res.via });
          continue;
        }
        const id = res.body.decision_id as string;
        // The approver answers through either API; a retry of a counted answer is refused as already answered.
        const answer = await eventually(async () => {
          const r = await call(ops, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' }, i + lane + 1);
          if (r.status === 200 && r.body.counted === true) return r;
          // An earlier attempt of this answer was counted before its API died: the round is closed.
          if ((r.status === 200 || r.status === 409) && /already/i.test(JSON.stringify(r.body))) return r;
          // The run's first events not written yet, or its worker just died: asked again (said if it never counts).
          throw new Error(`${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
        }, 120_000, `the approval of ${id}`);
        const final = await call(bot, 'GET', `/v1/decisions/${id}?wait=60`, undefined, i + lane);
        if (final.body?.status !== 'final') {
          failures.push(`decision ${id} not final after its approval: ${JSON.stringify(final.body).slice(0, 300)}`);
          continue;
        }
        acknowledged.push({ id, decision: final.body.decision, via: answer.via });
      }
    };

    const lanes = [0, 1, 2, 3].map((lane) => client(lane));
    // Phases by progress, not by time: on a loaded machine a phase of seconds may acknowledge nothing.
    const progress = (atLeast: number, what: string) => eventually(async () => (acknowledged.length >= atLeast || failures.length > 0 ? true : undefined), 240_000, what);
    await progress(8, 'the first decisions');
    // One of each dies without warning.
    down.add(stack.url);
    stack.api.child.kill('SIGKILL');
    stack.worker.child.kill('SIGKILL');
    stack.publisher.child.kill('SIGKILL');
    const firstKill = acknowledged.length;
    await progress(firstKill + 6, 'decisions after the first kills');
    // The supervisor brings the killed publisher back; it stands by behind the one that took over, which dies next.
    publisher3 = await startProcess('publisher-3', 'services/publisher/main.ts', { ...stack.env, COUNTERSIGN_LOG_LEVEL: 'info' }, /publisher starting/);
    publisher2.child.kill('SIGKILL');
    const secondKill = acknowledged.length;
    await progress(secondKill + 6, 'decisions after the second publisher was killed');
    stop = true;
    await Promise.all(lanes);
    console.log(`load: ${acknowledged.length} decisions acknowledged (${firstKill} before the first kill, ${secondKill} before the second), ${acknowledged.filter((a) => a.via === url2).length} through the surviving API`);
    expect(failures).toEqual([]);
    expect(acknowledged.length).toBeGreaterThan(secondKill);
    expect(secondKill).toBeGreaterThan(firstKill);

    // Every acknowledged decision: final, and its signed receipt says what the client was told.
    const keys = (await fetch(`${url2}/v1/keys`).then((r) => r.json())) as PublicKeySet;
    let wrongReceipts = 0;
    for (const a of acknowledged) {
      const receipt = await eventually(async () => {
        const r = await api({ url: url2, key: stack.key }, 'GET', `/v1/decisions/${a.id}/receipt`);
        return r.status === 200 ? r.body : undefined;
      }, 120_000, `the receipt of ${a.id}`);
      if (receipt.receipt.decision !== a.decision || receipt.receipt.decision_id !== a.id || !verifyReceipt(receipt, keys).ok) wrongReceipts += 1;
    }
    console.log(`attack acknowledged-without-its-receipt: ${acknowledged.length} attempts, ${wrongReceipts} got through`);
    expect(wrongReceipts).toBe(0);

    // Every run's stream is whole: versions 1..n, one DecisionRequested, each event once.
    const broken = await stack.db.query(
      `SELECT stream_id FROM events WHERE stream_id LIKE 'run/%' GROUP BY stream_id
        HAVING max(stream_version) <> count(*) OR count(DISTINCT event_id) <> count(*) OR count(*) FILTER (WHERE type = 'DecisionRequested') <> 1`);
    expect(broken.rows).toEqual([]);

    // The backlog drains (the restarted publisher leads) and Kafka holds every event exactly once.
    await eventually(async () => {
      const r = await stack.db.query<{ left: string }>(
        `SELECT count(*)::text AS left FROM events e, publisher_checkpoints c WHERE c.name = $1 AND (e.tx_id, e.position) > (c.tx_id, c.position)`, [`kafka:${stack.topic}`]);
      return r.rows[0]?.left === '0' ? true : undefined;
    }, 120_000, 'the publisher backlog to drain');
    const ids = new Set((await stack.db.query<{ event_id: string }>('SELECT event_id FROM events')).rows.map((r) => r.event_id));
    const seen = new Map<string, number>();
    await createKafkaSource({ brokers: stackEnv().KAFKA_BROKERS.split(','), topic: stack.topic }).readToEnd((r) => {
      const id = r.headers['event_id']!;
      seen.set(id, (seen.get(id) ?? 0) + 1);
    });
    const missing = [...ids].filter((id) => !seen.has(id)).length;
    const twice = [...seen.values()].filter((c) => c > 1).length;
    const foreign = [...seen.keys()].filter((id) => !ids.has(id)).length;
    console.log(`attack event-missing-from-kafka: ${ids.size} attempts, ${missing} got through`);
    console.log(`attack event-published-twice: ${ids.size} attempts, ${twice + foreign} got through`);
    expect({ missing, twice, foreign }).toEqual({ missing: 0, twice: 0, foreign: 0 });
  }, 600_000);
});
