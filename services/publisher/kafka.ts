import { Kafka, logLevel, CompressionTypes, type Producer, type Admin } from 'kafkajs';
import type { StoredEvent } from '../../schemas/events.ts';
import type { EventSink, EventSource, SourceRecord } from './event-sink.ts';

export type KafkaOptions = { brokers: string[]; topic: string; clientId?: string; partitions?: number };

function client(opts: KafkaOptions): Kafka {
  return new Kafka({
    clientId: opts.clientId ?? 'countersign',
    brokers: opts.brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2_000 },
  });
}

/** Creates the topic if it does not exist (idempotent). */
export async function ensureTopic(opts: KafkaOptions): Promise<void> {
  const admin: Admin = client(opts).admin();
  await admin.connect();
  try {
    const topics = await admin.listTopics();
    if (!topics.includes(opts.topic)) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic: opts.topic, numPartitions: opts.partitions ?? 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '-1' }] }],
      });
    }
  } finally {
    await admin.disconnect();
  }
}

/** Idempotent producer, acks from all in-sync replicas, keyed by stream id so each stream stays in order. */
export async function createKafkaSink(opts: KafkaOptions): Promise<EventSink> {
  const producer: Producer = client(opts).producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  return {
    async send(events) {
      await producer.send({
        topic: opts.topic,
        acks: -1,
        compression: CompressionTypes.None,
        messages: events.map((e: StoredEvent) => ({
          key: e.stream_id,
          value: JSON.stringify(e),
          headers: { type: e.type, schema_version: String(e.schema_version), tenant_id: e.tenant_id, event_id: e.event_id },
        })),
      });
    },
    async close() {
      await producer.disconnect();
    },
  };
}

/**
 * Reads the whole topic once, partition by partition, up to the high watermarks taken at the start.
 * No consumer group: an auditor's replay must not depend on (or move) anyone's committed offsets.
 */
export function createKafkaSource(opts: KafkaOptions): EventSource {
  return {
    async readToEnd(onRecord) {
      const kafka = client(opts);
      const admin = kafka.admin();
      await admin.connect();
      let ends: Array<{ partition: number; low: string; high: string }>;
      try {
        ends = (await admin.fetchTopicOffsets(opts.topic)).map((o) => ({ partition: o.partition, low: o.low, high: o.high }));
      } finally {
        await admin.disconnect();
      }
      const pending = new Map(ends.filter((e) => BigInt(e.high) > BigInt(e.low)).map((e) => [e.partition, BigInt(e.high)]));
      if (pending.size === 0) return;
      const consumer = kafka.consumer({ groupId: `countersign-replay-${process.pid}-${Date.now()}`, maxBytes: 50 * 1024 * 1024 });
      await consumer.connect();
      try {
        await consumer.subscribe({ topic: opts.topic, fromBeginning: true });
        await new Promise<void>((resolve, reject) => {
          consumer
            .run({
              autoCommit: false,
              eachBatch: async ({ batch }) => {
                const end = pending.get(batch.partition);
                if (end === undefined) return;
                for (const m of batch.messages) {
                  if (BigInt(m.offset) >= end) break;
                  const headers: Record<string, string> = {};
                  for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
                  const record: SourceRecord = { partition: batch.partition, offset: m.offset, key: m.key?.toString('utf8') ?? null, value: m.value?.toString('utf8') ?? null, headers };
                  await onRecord(record);
                  if (BigInt(m.offset) + 1n >= end) {
                    pending.delete(batch.partition);
                    break;
                  }
                }
                if (pending.size === 0) resolve();
              },
            })
            .catch(reject);
        });
      } finally {
        await consumer.disconnect();
      }
    },
  };
}
