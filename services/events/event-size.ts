import type { StoredEvent } from '../../schemas/events.ts';

/**
 * How large one event may be, so that the topic always takes it.
 *
 * The publisher sends events in log order and never skips one (invariant 2): an event the broker refuses as
 * too large would be retried forever and hold every tenant's publication behind it. So oversize is made
 * impossible where events are written, not handled where they are sent:
 * - the topic is created (and, on every publisher connect, kept) with `max.message.bytes` =
 *   TOPIC_MAX_MESSAGE_BYTES (services/publisher/kafka.ts ensureTopic); the broker's own default is the same
 *   (services/stack/stack.sh), and consumers fetch at least that much per partition;
 * - the one write path refuses (413, nothing written) an event whose Kafka record would exceed
 *   MAX_EVENT_RECORD_BYTES (services/events/append-to-stream.ts), measured on the exact message the sink
 *   sends (kafkaMessage below);
 * - the API's body bound (1 MiB, services/api/server.ts) sits far enough below that every event a request
 *   can cause fits: a decision request is carried whole in DecisionRequested (plus a bounded envelope),
 *   JSON re-serialisation can lengthen a body only through its numbers (`1e20` prints as 21 digits; at most
 *   50,000 values per body, services/api/json-bounds.ts), comments and justifications are at most 4,000
 *   characters, outcomes are carried as a digest, and a policy activation carries its document (at most
 *   the body bound) and the compiled snapshot (about the same size again): at most about 2.2 MiB, under
 *   the 4 MiB here (test/unit/events/event-size.unit.test.ts builds the worst cases). So a run's events,
 *   appended by activities long after the API answered, never meet the refusal above.
 * - the publisher sends at most TOPIC_MAX_MESSAGE_BYTES of records per produce call, since the limit applies
 *   to a partition's whole record batch, not only to each record.
 */
export const TOPIC_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** Room for a record batch's header (61 bytes) and a record's own framing (varints, attributes). */
const BATCH_OVERHEAD_BYTES = 1024;
const RECORD_FRAMING_BYTES = 64;

/** The largest event record (key, value, headers, framing) the write path accepts. */
export const MAX_EVENT_RECORD_BYTES = TOPIC_MAX_MESSAGE_BYTES - BATCH_OVERHEAD_BYTES;

/** A position as wide as a bigint prints: an event is measured before the database gives it one. */
export const WIDEST_POSITION = '9223372036854775807';

export type KafkaMessage = { key: string; value: string; headers: Record<string, string> };

/** The Kafka message of one stored event: keyed by stream id, so a consumer sees each stream in order. */
export function kafkaMessage(e: StoredEvent): KafkaMessage {
  return {
    key: e.stream_id,
    value: JSON.stringify(e),
    headers: { type: e.type, schema_version: String(e.schema_version), tenant_id: e.tenant_id, event_id: e.event_id },
  };
}

/** Bytes the event takes in a record batch (an upper bound of its framing included). */
export function eventRecordBytes(e: StoredEvent): number {
  const m = kafkaMessage(e);
  let bytes = Buffer.byteLength(m.key) + Buffer.byteLength(m.value) + RECORD_FRAMING_BYTES;
  for (const [k, v] of Object.entries(m.headers)) bytes += Buffer.byteLength(k) + Buffer.byteLength(v) + 10;
  return bytes;
}
