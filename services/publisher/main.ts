import { loadConfig } from '../config.ts';
import { createPool } from '../events/db.ts';
import { createLogger } from '../logger.ts';
import { createKafkaSink, ensureTopic } from './kafka.ts';
import { runPublisher } from './outbox.ts';

const config = loadConfig();
const log = createLogger('publisher', config.COUNTERSIGN_LOG_LEVEL);
const db = createPool(config.DATABASE_URL, 2);
const kafka = { brokers: config.KAFKA_BROKERS.split(','), topic: config.COUNTERSIGN_KAFKA_TOPIC, clientId: 'countersign-publisher' };
const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => controller.abort());

log('info', 'publisher starting', { topic: kafka.topic, brokers: kafka.brokers });
await runPublisher({
  db,
  name: `kafka:${kafka.topic}`,
  connectSink: async () => {
    await ensureTopic(kafka);
    return createKafkaSink(kafka);
  },
  batchSize: config.COUNTERSIGN_PUBLISH_BATCH,
  idleMs: config.COUNTERSIGN_PUBLISH_IDLE_MS,
  log,
  signal: controller.signal,
});
await db.end();
log('info', 'publisher stopped');
