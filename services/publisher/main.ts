import { loadConfigOrExit } from '../config.ts';
import { createPool, withSystem } from '../events/db.ts';
import { createLogger } from '../logger.ts';
import { probe, serveMetrics } from '../worker/metrics.ts';
import { awaitKafkaCredentials, createKafkaSink, ensureTopic, kafkaReachable } from './kafka.ts';
import { describeKafka } from './kafka-settings.ts';
import { whileLeader } from './leadership.ts';
import { publisherMetrics } from './metrics.ts';
import { loadCheckpoint, runPublisher } from './outbox.ts';
import { tracedSink } from './traced-sink.ts';
import { startTracing } from '../telemetry/tracing.ts';

const config = loadConfigOrExit(process.env, 'publisher');
const log = createLogger('publisher', config.COUNTERSIGN_LOG_LEVEL);
const tracing = await startTracing('countersign-publisher', config);
const db = createPool(config.DATABASE_URL, config.COUNTERSIGN_PG_POOL_MAX ?? 2);
const kafka = {
  ...config.kafka,
  topic: config.COUNTERSIGN_KAFKA_TOPIC,
  clientId: 'countersign-publisher',
  partitions: config.COUNTERSIGN_KAFKA_PARTITIONS,
  replicationFactor: config.COUNTERSIGN_KAFKA_REPLICATION_FACTOR,
};
const name = `kafka:${kafka.topic}`;
const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => controller.abort());

let role: 'leader' | 'standby' | 'connecting' = 'connecting';
const metrics = publisherMetrics({
  role: () => role,
  // Events committed but not yet acknowledged by Kafka: those after the checkpoint (Postgres unreachable: unknown).
  lag: async () => {
    const cp = await loadCheckpoint(db, name);
    return withSystem(db, 'publisher', async (c) => {
      const res = await c.query<{ n: string }>('SELECT count(*)::text AS n FROM events WHERE (tx_id, position) > ($1::xid8, $2::bigint)', [cp.txId, cp.position]);
      return Number(res.rows[0]?.n ?? 0);
    });
  },
});
const metricsServer = config.COUNTERSIGN_PUBLISHER_METRICS_PORT !== undefined
  ? await serveMetrics(metrics.registry, config.COUNTERSIGN_HOST, config.COUNTERSIGN_PUBLISHER_METRICS_PORT, {
    ready: async () => {
      const [postgres, kafkaState] = await Promise.all([probe(2_000, () => db.query('SELECT 1')), probe(4_000, () => kafkaReachable(kafka))]);
      return { postgres, kafka: kafkaState };
    },
    detail: () => ({ role }),
  })
  : null;

log('info', 'publisher starting', { topic: kafka.topic, kafka: describeKafka(config.kafka) });
// Brokers that refuse our credentials are no outage to wait out: the publisher refuses to start, with one line.
await awaitKafkaCredentials(kafka, {
  signal: controller.signal,
  onWait: (reason, retryMs) => log('warn', 'Kafka unreachable; waiting for it', { kafka: describeKafka(config.kafka), error: reason, retry_ms: retryMs }),
}).catch(async (err: unknown) => {
  log('error', `refusing to start: ${err instanceof Error ? err.message : String(err)}`);
  metricsServer?.close();
  await db.end().catch(() => {});
  process.exit(1);
});
// Any number of publishers may run: the one holding the lock publishes, the others stand by to take over.
await whileLeader({
  url: config.DATABASE_URL,
  name,
  log,
  signal: controller.signal,
  onRole: (r) => {
    role = r;
    if (r === 'standby') log('info', 'publisher standing by', { name });
  },
}, (signal) => runPublisher({
  db,
  name,
  connectSink: async () => {
    const topic = await ensureTopic(kafka);
    if (topic.created) log('info', 'created the event topic', { topic: kafka.topic, partitions: kafka.partitions, replication_factor: kafka.replicationFactor });
    for (const d of topic.differences) log('warn', `the event topic ${d}; left as it is (see COUNTERSIGN_KAFKA_PARTITIONS)`, { topic: kafka.topic });
    // One transactional id per topic, shared by every publisher of it (services/publisher/kafka.ts).
    const sink = await createKafkaSink({ ...kafka, exactlyOnce: { id: `countersign.publisher.${kafka.topic}` }, recordsPerCall: config.COUNTERSIGN_PUBLISH_BATCH });
    return tracing.enabled ? tracedSink(sink, tracing.tracer, kafka.topic) : sink;
  },
  batchSize: config.COUNTERSIGN_PUBLISH_BATCH,
  idleMs: config.COUNTERSIGN_PUBLISH_IDLE_MS,
  lingerMs: config.COUNTERSIGN_PUBLISH_LINGER_MS,
  log,
  signal,
  onSent: (count) => {
    metrics.published.inc(count);
    // Test only: die after Kafka committed a batch and before its checkpoint is written to Postgres.
    if (config.COUNTERSIGN_CRASH_AT === 'after-kafka-commit') process.kill(process.pid, 'SIGKILL');
  },
  onFailure: () => metrics.failures.inc(),
}));
metricsServer?.close();
await db.end();
if (tracing.enabled) await tracing.shutdown();
log('info', 'publisher stopped');
