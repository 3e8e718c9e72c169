import kafkajs, { Kafka, logLevel, CompressionTypes, type Producer, type Admin } from 'kafkajs';
import type { StoredEvent } from '../../schemas/events.ts';
import { z } from 'zod';
import { eventRecordBytes, kafkaMessage, TOPIC_MAX_MESSAGE_BYTES } from '../events/event-size.ts';

// A CommonJS enum that Node's ESM loader does not see as a named export.
const { ConfigResourceTypes } = kafkajs;
import type { EventHeaders, EventSink, EventSource, SourceRecord } from './event-sink.ts';
import type { KafkaConnection } from './kafka-settings.ts';

/** A connection (brokers, TLS, SASL: services/publisher/kafka-settings.ts), the topic, and how to create it. */
export type KafkaOptions = KafkaConnection & { topic: string; clientId?: string; partitions?: number; replicationFactor?: number };

/** Every Kafka client of ours, made in one place so none connects without the configured TLS and SASL. */
function client(opts: KafkaOptions, tuning: { connectionTimeout: number; requestTimeout: number; retry: { retries: number; initialRetryTime?: number; maxRetryTime?: number } } = {
  connectionTimeout: 3_000,
  requestTimeout: 10_000,
  retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2_000 },
}): Kafka {
  return new Kafka({
    clientId: opts.clientId ?? 'countersign',
    brokers: opts.brokers,
    ...(opts.ssl !== undefined ? { ssl: opts.ssl } : {}),
    ...(opts.sasl !== undefined ? { sasl: opts.sasl } : {}),
    logLevel: logLevel.NOTHING,
    ...tuning,
  });
}

/**
 * What the event topic must be configured with, explicitly rather than by the broker's defaults: kept forever,
 * by time and by size (replay reads from offset 0, and the log is the audit trail), taking any event the write
 * path accepts (services/events/event-size.ts), and acknowledged by all but one replica (acks=all).
 */
export function topicConfig(replicationFactor = 1): ReadonlyArray<{ name: string; value: string }> {
  return [
    { name: 'retention.ms', value: '-1' },
    { name: 'retention.bytes', value: '-1' },
    { name: 'max.message.bytes', value: String(TOPIC_MAX_MESSAGE_BYTES) },
    { name: 'min.insync.replicas', value: String(Math.max(1, replicationFactor - 1)) },
  ];
}
export const TOPIC_CONFIG = topicConfig(1);

/**
 * Creates the topic with its partitions, replication factor and topicConfig if it does not exist, and sets
 * topicConfig on one that differs (a topic made by an older version, or changed by hand): idempotent. The
 * publisher calls it on every (re)connect, so a send refused after someone lowered the topic's limit is followed
 * by the limit being put back and a resend. Partitions and replicas of an existing topic are only reported:
 * more partitions would move streams to other partitions (and out of order), and replicas are the operator's
 * reassignment to make.
 */
export async function ensureTopic(opts: KafkaOptions): Promise<{ created: boolean; differences: string[] }> {
  const admin: Admin = client(opts).admin();
  const config = topicConfig(opts.replicationFactor ?? 1);
  await admin.connect();
  try {
    const topics = await admin.listTopics();
    if (!topics.includes(opts.topic)) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic: opts.topic, numPartitions: opts.partitions ?? 3, replicationFactor: opts.replicationFactor ?? 1, configEntries: [...config] }],
      });
      return { created: true, differences: [] };
    }
    const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: opts.topic, configNames: config.map((c) => c.name) }] });
    const current = new Map((described.resources[0]?.configEntries ?? []).map((c) => [c.configName, c.configValue]));
    if (config.some((c) => current.get(c.name) !== c.value)) {
      // alterConfigs replaces the topic's whole set of overrides: these are the only ones we make.
      await admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: opts.topic, configEntries: [...config] }] });
    }
    const meta = (await admin.fetchTopicMetadata({ topics: [opts.topic] })).topics[0];
    const differences: string[] = [];
    const partitions = meta?.partitions.length ?? 0;
    const replicas = Math.min(...(meta?.partitions ?? []).map((p) => p.replicas.length));
    if (opts.partitions !== undefined && partitions !== opts.partitions) differences.push(`has ${partitions} partitions, not ${opts.partitions}`);
    if (opts.replicationFactor !== undefined && replicas !== opts.replicationFactor) differences.push(`has ${replicas} replicas, not ${opts.replicationFactor}`);
    return { created: false, differences };
  } finally {
    await admin.disconnect();
  }
}

/** Whether a broker answers (readiness): connects an admin client, lists topics, disconnects. */
export async function kafkaReachable(opts: KafkaOptions): Promise<void> {
  const admin = client(opts, { connectionTimeout: 2_000, requestTimeout: 3_000, retry: { retries: 0 } }).admin();
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
  const message = (headers: EventHeaders | undefined) => (e: StoredEvent) => {
    const m = kafkaMessage(e);
    const extra = headers?.get(e.event_id);
    return extra ? { ...m, headers: { ...extra, ...m.headers } } : m;
  };
  const records = (part: readonly StoredEvent[], headers?: EventHeaders) => ({ topic: opts.topic, acks: -1, compression: CompressionTypes.None, messages: part.map(message(headers)) });
  if (!id) {
    return {
      async send(events, _through, headers) {
        // In order, one call after the other: a failure part-way re-sends the whole batch (consumers deduplicate).
        for (const part of byteBoundedParts(events)) await producer.send(records(part, headers));
      },
      async close() {
        await producer.disconnect();
      },
    };
  }
  return {
    async send(events, through, headers) {
      const txn = await producer.transaction();
      try {
        // One transaction, several produce calls: each stays within the topic's batch limit.
        for (const part of byteBoundedParts(events, undefined, opts.recordsPerCall)) await txn.send(records(part, headers));
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
      // Never creates the topic: replay of a topic that does not exist is an error, not an empty topic with defaults.
      const consumer = kafka.consumer({ allowAutoTopicCreation: false, groupId: `countersign-replay-${process.pid}-${Date.now()}`, maxBytes: 50 * 1024 * 1024, maxBytesPerPartition: 2 * TOPIC_MAX_MESSAGE_BYTES });
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

/**
 * The reason when a Kafka error means the brokers refuse our credentials (SASL authentication failed, a broker
 * certificate our CA does not sign or that names another host, a client certificate the broker refused), which
 * no wait will fix; undefined for anything that may pass (a broker down or restarting).
 */
export function kafkaRefusal(err: unknown): string | undefined {
  const e = err as { name?: string; message?: string; cause?: { message?: string } } | null;
  if (!e) return undefined;
  const text = [e.message, e.cause?.message].filter(Boolean).join(': ').replace(/\s+/g, ' ').trim();
  if (e.name === 'KafkaJSSASLAuthenticationError') return text;
  if (/certificate|altnames|self-signed|unable to verify|unknown ca|alert bad|handshake failure|wrong version number/i.test(text)) return text;
  return undefined;
}

/**
 * Waits while no broker answers (backoff up to 5 s) and resolves once one accepts our connection; throws one line
 * when the brokers refuse our credentials, which the publisher turns into a refusal to start.
 */
export async function awaitKafkaCredentials(opts: KafkaOptions, o: { signal?: AbortSignal; onWait?: (reason: string, retryMs: number) => void } = {}): Promise<void> {
  let backoff = 250;
  while (!o.signal?.aborted) {
    try {
      await kafkaReachable(opts);
      return;
    } catch (err) {
      const refused = kafkaRefusal(err);
      if (refused !== undefined) throw new Error(`Kafka at ${opts.brokers.join(',')} refused the connection: ${refused}`);
      const reason = err instanceof Error ? err.message : String(err);
      // A TLS or SASL listener closes a connection that speaks neither.
      o.onWait?.(/Closed connection/i.test(reason) ? `${reason} (if the brokers want TLS or SASL, set KAFKA_SSL and KAFKA_SASL_*)` : reason, backoff);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, backoff);
      o.signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
    backoff = Math.min(backoff * 2, 5_000);
  }
}
