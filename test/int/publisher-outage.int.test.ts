import { randomBytes } from 'node:crypto';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Replay } from '../../services/audit/replay.ts';
import { createKafkaSource } from '../../services/publisher/kafka.ts';
import { loadPublicKeys } from '../../services/receipts/keyring.ts';
import { api, eventually, freePort, startTestStack, type TestStack } from './harness.ts';

const LIBS = path.join(process.env['COUNTERSIGN_CACHE_DIR'] ?? path.join(homedir(), '.cache', 'countersign'), 'kafka-3.9.1', 'libs');
const JAVA = ['-Xms128m', '-Xmx384m', '-XX:+UseG1GC', '-Djava.awt.headless=true', '-cp', `${LIBS}/*`];

/**
 * A private single-node KRaft broker for this test only, so stopping and killing it never disturbs the
 * shared broker other tests use. Same jars as services/stack/stack.sh.
 */
class PrivateBroker {
  private child: ChildProcess | null = null;
  readonly dir = mkdtempSync(path.join(tmpdir(), 'countersign-kafka-'));
  constructor(readonly port: number, readonly controllerPort: number) {
    writeFileSync(path.join(this.dir, 'server.properties'), [
      'process.roles=broker,controller', 'node.id=1', `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`, `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      'controller.listener.names=CONTROLLER', 'inter.broker.listener.name=PLAINTEXT', 'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      `log.dirs=${path.join(this.dir, 'logs')}`, 'num.partitions=3', 'offsets.topic.replication.factor=1', 'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1', 'min.insync.replicas=1', 'group.initial.rebalance.delay.ms=0', 'auto.create.topics.enable=false', '',
    ].join('\n'));
    writeFileSync(path.join(this.dir, 'log4j.properties'), 'log4j.rootLogger=WARN, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\nlog4j.appender.stdout.layout=org.apache.log4j.PatternLayout\nlog4j.logger.kafka.server.KafkaRaftServer=INFO\n');
    const log4j = `-Dlog4j.configuration=file:${path.join(this.dir, 'log4j.properties')}`;
    execFileSync('java', [...JAVA, log4j, 'kafka.tools.StorageTool', 'format', '-t', 'Zz2yfDI0TZ2oTmsnxLLGAw', '-c', path.join(this.dir, 'server.properties')], { stdio: 'ignore' });
  }
  get brokers(): string { return `127.0.0.1:${this.port}`; }
  async start(): Promise<void> {
    const log4j = `-Dlog4j.configuration=file:${path.join(this.dir, 'log4j.properties')}`;
    const child = spawn('java', [...JAVA, log4j, 'kafka.Kafka', path.join(this.dir, 'server.properties')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`private broker did not start:\n${out.slice(-2000)}`)), 90_000);
      const check = (d: Buffer) => { out += d.toString(); if (/Kafka Server started/.test(out)) { clearTimeout(t); resolve(); } };
      child.stdout.on('data', check);
      child.stderr.on('data', check);
      child.once('exit', (code) => { clearTimeout(t); reject(new Error(`private broker exited (${code}):\n${out.slice(-2000)}`)); });
    });
  }
  async stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
    this.child = null;
  }
  async destroy(): Promise<void> {
    await this.stop('SIGKILL');
    if (existsSync(this.dir)) rmSync(this.dir, { recursive: true, force: true });
  }
}

// Keys are unique per run: workflow ids derive from (tenant, key), and the Temporal server outlives test databases.
const RUN = randomBytes(4).toString('hex');
const refund = (amount: number, key: string) => ({ agent: { id: 'support-bot' }, action: { tool: 'payment_tool', operation: 'Refund', args: { order: key } }, context: { amount }, idempotency_key: `${key}-${RUN}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a Kafka outage never blocks decisions or appends; the publisher drains the backlog when the broker returns', () => {
  let broker: PrivateBroker;
  let stack: TestStack;
  const saved = process.env['KAFKA_BROKERS'];
  beforeAll(async () => {
    broker = new PrivateBroker(await freePort(), await freePort());
    await broker.start();
    process.env['KAFKA_BROKERS'] = broker.brokers;
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.stop();
    await broker?.destroy();
    process.env['KAFKA_BROKERS'] = saved;
  });

  async function receiptsOnKafka(): Promise<Set<string>> {
    const replay = new Replay({ keys: await loadPublicKeys(stack.env['COUNTERSIGN_KEYS_DIR']!) });
    await createKafkaSource({ brokers: [broker.brokers], topic: stack.topic }).readToEnd((r) => { replay.add({ value: r.value, where: `${r.partition}@${r.offset}` }); });
    const report = replay.finish();
    expect(report.divergences).toEqual([]);
    return new Set(report.receipts.map((r) => r.receipt.decision_id));
  }

  async function decide(key: string): Promise<string> {
    const res = await api(stack, 'POST', '/v1/decisions', refund(42, key));
    expect(res.status).toBe(200);
    const id = res.body.decision_id as string;
    // Appended to the log (receipt included) while the broker is away.
    await eventually(async () => ((await stack.db.query('SELECT 1 FROM events WHERE stream_id = $1 AND type = $2', [`run/${id}`, 'ReceiptIssued'])).rowCount ? true : undefined), 30_000, `the receipt of ${id} in Postgres`);
    return id;
  }

  const allOnKafka = (ids: string[]) => eventually(async () => {
    const onKafka = await receiptsOnKafka();
    return ids.every((id) => onKafka.has(id)) ? true : undefined;
  }, 90_000, 'every receipt on Kafka');

  it('broker stopped for 60 s (SIGTERM): decisions go on, then every event reaches the topic', async () => {
    const ids = [await decide('outage-before')];
    await allOnKafka(ids);
    await broker.stop('SIGTERM');
    const down = Date.now();
    let n = 0;
    while (Date.now() - down < 60_000) {
      ids.push(await decide(`outage-term-${n++}`));
      await sleep(4_000);
    }
    expect(n).toBeGreaterThan(5);
    await broker.start();
    await allOnKafka(ids);
  }, 240_000);

  it('broker killed (SIGKILL): decisions go on, then every event reaches the topic', async () => {
    await broker.stop('SIGKILL');
    const ids: string[] = [];
    for (let i = 0; i < 4; i += 1) ids.push(await decide(`outage-kill-${i}`));
    await sleep(10_000); // let the publisher fail and back off against the dead broker
    await broker.start();
    await allOnKafka(ids);
    const events = Number((await stack.db.query<{ n: string }>('SELECT count(*)::text AS n FROM events')).rows[0]!.n);
    let records = 0;
    const unique = new Set<string>();
    await createKafkaSource({ brokers: [broker.brokers], topic: stack.topic }).readToEnd((r) => { records += 1; unique.add(r.headers['event_id']!); });
    expect(unique.size).toBe(events);
    expect(records).toBeGreaterThanOrEqual(events);
  }, 240_000);
});
