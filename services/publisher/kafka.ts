import kafkajs, { Kafka, logLevel, CompressionTypes, type Producer, type Admin } from 'kafkajs';
import type { StoredEvent } from '../../schemas/events.ts';
import { z } from 'zod';
import { eventRecordBytes, kafkaMessage, TOPIC_MAX_MESSAGE_BYTES } from '../events/event-size.ts';

// A CommonJS enum that Node's ESM loader does not see as a named export.
const { ConfigResourceTypes } = kafkajs;
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

/**
 * What the event topic must be configured with, explicitly rather than by the broker's defaults: kept forever
 * (replay reads from offset 0), and taking any event the write path accepts (services/events/event-size.ts).
 */
export const TOPIC_CONFIG: ReadonlyArray<{ name: string; value: string }> = [
  { name: 'retention.ms', value: '-1' },
  { name: 'max.message.bytes', value: String(TOPIC_MAX_MESSAGE_BYTES) },
];

/**
 * Creates the topic with TOPIC_CONFIG if it does not exist, and sets TOPIC_CONFIG on one that differs (a topic
 * made by an older version, or changed by hand): idempotent. The publisher calls it on every (re)connect, so a
 * send refused after someone lowered the topic's limit is followed by the limit being put back and a resend.
 */
export async function ensureTopic(opts: KafkaOptions): Promise<void> {
  const admin: Admin = client(opts).admin();
  await admin.connect();
  try {
    const topics = await admin.listTopics();
    if (!topics.includes(opts.topic)) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic: opts.topic, numPartitions: opts.partitions ?? 3, replicationFactor: 1, configEntries: [...TOPIC_CONFIG] }],
      });
      return;
    }
    const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: opts.topic, configNames: TOPIC_CONFIG.map((c) => c.name) }] });
    const current = new Map((described.resources[0]?.configEntries ?? []).map((c) => [c.configName, c.configValue]));
    if (TOPIC_CONFIG.some((c) => current.get(c.name) !== c.value)) {
      // alterConfigs replaces the topic's whole set of overrides: these are the only ones we make.
      await admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: opts.topic, configEntries: [...TOPIC_CONFIG] }] });
    }
  } finally {
    await admin.disconnect();
  }
}

/** Whether a broker answers (readiness): connects an admin client, lists topics, disconnects. */
export async function kafkaReachable(opts: KafkaOptions): Promise<void> {
  const admin = new Kafka({ clientId: opts.clientId ?? 'countersign', brokers: opts.brokers, logLevel: logLevel.NOTHING, connectionTimeout: 2_000, requestTimeout: 3_000, retry: { retries: 0 } }).admin();
  try {
    await admin.connect();
    await admin.listTopics();
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/**
 * Consecutive runs of events whose records together stay within the topic's limit. The limit applies to a
 * partition's record batch, and one produce call makes one batch per partition: bounding the whole call is
 * the simple sufficient rule. Each event alone fits (the write path refuses any that would not).
 */
export function byteBoundedParts(events: readonly StoredEvent[], limit = TOPIC_MAX_MESSAGE_BYTES - 1024, maxRecords = Infinity): StoredEvent[][] {
  const parts: StoredEvent[][] = [];
  let part: StoredEvent[] = [];
  let bytes = 0;
  for (const e of events) {
    const size = eventRecordBytes(e);
    if (part.length > 0 && (bytes + size > limit || part.length >= maxRecords)) {
      parts.push(part);
      part = [];
      bytes = 0;
    }
    part.push(e);
    bytes += size;
  }
  if (part.length > 0) parts.push(part);
  return parts;
}

/** The checkpoint a transactional sink commits with its events, as consumer-group offset metadata. */
const CommittedCheckpoint = z.object({ txId: z.string().regex(/^\d{1,20}$/), position: z.string().regex(/^\d{1,20}$/) }).strict();

export type KafkaSinkOptions = KafkaOptions & {
  /**
   * Exactly once: every send is one Kafka transaction that also commits its checkpoint (as the offset metadata
   * of this consumer group, which no consumer uses), under the transactional id of the same name. Every
   * publisher of a topic uses the same name, so a new one fences the earlier ones (a send still on its way
   * from a publisher that lost its lead can no longer commit) and resumes after the committed checkpoint.
   * Without it: an idempotent producer, at least once.
   */
  exactlyOnce?: { id: string };
  /** Records per produce call at most (a transaction spans as many calls as its events need). */
  recordsPerCall?: number;
};

/** Acks from all in-sync replicas, keyed by stream id so each stream stays in order. */
export async function createKafkaSink(opts: KafkaSinkOptions): Promise<EventSink> {
  const kafka = client(opts);
  const id = opts.exactlyOnce?.id;
  const producer: Producer = kafka.producer(id
    // Short enough that a reader (read_committed) waits at most this long behind the open transaction of a
    // publisher that died, when no other publisher takes over and aborts it sooner.
    ? { transactionalId: id, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, transactionTimeout: 30_000 }
    : { idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  const records = (part: readonly StoredEvent[]) => ({ topic: opts.topic, acks: -1, compression: CompressionTypes.None, messages: part.map(kafkaMessage) });
  if (!id) {
    return {
      async send(events) {
        // In order, one call after the other: a failure part-way re-sends the whole batch (consumers deduplicate).
        for (const part of byteBoundedParts(events)) await producer.send(records(part));
      },
      async close() {
        await producer.disconnect();
      },
    };
  }
  return {
    async send(events, through) {
      const txn = await producer.transaction();
      try {
        // One transaction, several produce calls: each stays within the topic's batch limit.
        for (const part of byteBoundedParts(events, undefined, opts.recordsPerCall)) await txn.send(records(part));
        if (through) {
          // kafkajs passes a partition's metadata through to TxnOffsetCommit, though its types leave it out.
          await txn.sendOffsets({ consumerGroupId: id, topics: [{ topic: opts.topic, partitions: [{ partition: 0, offset: '0', metadata: JSON.stringify({ txId: through.txId, position: through.position }) } as { partition: number; offset: string }] }] });
        }
        await txn.commit();
      } catch (err) {
        await txn.abort().catch(() => {});
        throw err;
      }
    },
    async resumeFrom() {
      // Starting a transaction registers this producer's epoch with the coordinator: every earlier producer of
      // the id is fenced, and a transaction one of them left open is aborted.
      const fence = await producer.transaction();
      await fence.abort();
      const admin = kafka.admin();
      await admin.connect();
      try {
        const [topic] = await admin.fetchOffsets({ groupId: id, topics: [opts.topic] });
        const metadata = topic?.partitions.find((p) => p.partition === 0)?.metadata;
        if (!metadata) return null;
        let parsed: unknown;
        try {
          parsed = JSON.parse(metadata);
        } catch {
          parsed = undefined;
        }
        const cp = CommittedCheckpoint.safeParse(parsed);
        if (!cp.success) throw new Error(`the checkpoint committed on Kafka for ${id} is not one: ${metadata.slice(0, 200)}`);
        return cp.data;
      } finally {
        await admin.disconnect();
      }
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
      // Per partition, at least the largest record batch the topic takes.
      const consumer = kafka.consumer({ groupId: `countersign-replay-${process.pid}-${Date.now()}`, maxBytes: 50 * 1024 * 1024, maxBytesPerPartition: 2 * TOPIC_MAX_MESSAGE_BYTES });
      await consumer.connect();
      let finish = () => {};
      // A partition written in transactions ends with a commit marker, which no message carries: a batch's
      // last offset (markers and aborted records included) says when a partition is read to its end. kafkajs
      // hands a batch of only markers or aborted records to no eachBatch, only to this event.
      const reached = (partition: number, lastOffset: string) => {
        const end = pending.get(partition);
        if (end !== undefined && BigInt(lastOffset) + 1n >= end) pending.delete(partition);
        if (pending.size === 0) finish();
      };
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => reached(payload.partition, payload.lastOffset));
      try {
        await consumer.subscribe({ topic: opts.topic, fromBeginning: true });
        await new Promise<void>((resolve, reject) => {
          finish = resolve;
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
