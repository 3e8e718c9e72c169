// Publisher benchmark: runPublisher (services/publisher/outbox.ts: safe-batch read from Postgres, Kafka send
// with acks from all in-sync replicas, checkpoint write) with createKafkaSink over N pre-appended events in a
// fresh database, to a fresh topic, against a raw kafkajs producer (idempotent, acks=-1) sending the same
// records (same key, value and headers, same batch size per send) to another fresh topic. Rounds alternate the
// two; each publisher round starts from an empty checkpoint of its own. The publisher reads Postgres 4 sends'
// worth at a time (its default readSize), overlapping each read with the previous one's sends; every Kafka send
// is `batchSize` records on both sides. Goal: publisher/raw >= 0.7x.
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/publish.ts [events] [rounds]
import { randomBytes } from 'node:crypto';
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import type { NewEvent, StoredEvent } from '../schemas/events.ts';
import { appendToStream } from '../services/events/append-to-stream.ts';
import { createInspectionPool, createPool } from '../services/events/db.ts';
import { EVENT_COLUMNS, rowToEvent, type EventRow } from '../services/events/stored-event.ts';
import { createKafkaSink, ensureTopic } from '../services/publisher/kafka.ts';
import { runPublisher } from '../services/publisher/outbox.ts';
import { createTestDatabase } from '../test/int/harness.ts';

const total = Number(process.argv[2] ?? 20_000);
const rounds = Number(process.argv[3] ?? 3);
const batchSize = 500; // COUNTERSIGN_PUBLISH_BATCH default
const brokers = (process.env['KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',');
const run = randomBytes(4).toString('hex');

const database = await createTestDatabase();
const db = createPool(database.url, 4);

// Pre-append: 4-event streams (the shape of an ALLOW run), 8 writers.
let next = 0;
const perStream = 4;
await Promise.all(Array.from({ length: 8 }, async () => {
  while (next < total / perStream) {
    const s = (next += 1);
    const events: NewEvent[] = Array.from({ length: perStream }, (_, i) => ({
      type: 'OutcomeReported',
      eventId: `ev-${run}-${s}-${i}`,
      data: { status: 'succeeded', output_digest: `sha256:${'ab'.repeat(32)}`, reported_by: 'bench-agent', at: new Date().toISOString() },
      metadata: { causation_id: `wf-${s}`, correlation_id: `dec-${s}` },
    }));
    await appendToStream(db, { streamId: `run/${run}-${s}`, tenantId: `t${s % 4}`, expectedVersion: 0, events, recordedAt: new Date() });
  }
}));
const inspect = createInspectionPool(database.url, 1);
const stored: StoredEvent[] = (await inspect.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events ORDER BY tx_id, position`)).rows.map(rowToEvent);
await inspect.end();
const n = stored.length;
process.stderr.write(`appended ${n} events\n`);

// runPublisher loops until aborted: abort once the last event is acknowledged; the loop still writes that
// batch's checkpoint, then closes the producer. Both sides' times include producer connect and disconnect.
async function publisherRound(r: number): Promise<number> {
  const topic = `countersign.bench.publish.${run}.p${r}`;
  await ensureTopic({ brokers, topic });
  const controller = new AbortController();
  let sent = 0;
  const t = performance.now();
  await runPublisher({
    db,
    name: `bench:${topic}`,
    connectSink: async () => {
      // As the publisher runs in production: exactly once, one transaction per batch with its checkpoint.
      const sink = await createKafkaSink({ brokers, topic, clientId: 'bench-publisher', exactlyOnce: { id: `bench.${topic}` }, recordsPerCall: batchSize });
      return {
        resumeFrom: () => sink.resumeFrom!(),
        async send(events, through) {
          await sink.send(events, through);
          sent += events.length;
          if (sent >= n) controller.abort();
        },
        close: () => sink.close(),
      };
    },
    batchSize,
    idleMs: 50,
    log: (level, msg, fields) => { if (level !== 'info') process.stderr.write(`${level} ${msg} ${JSON.stringify(fields)}\n`); },
    signal: controller.signal,
  });
  if (sent !== n) throw new Error(`publisher sent ${sent} of ${n}`);
  return (performance.now() - t) / 1000;
}

async function rawRound(r: number): Promise<number> {
  const topic = `countersign.bench.publish.${run}.r${r}`;
  await ensureTopic({ brokers, topic });
  const t = performance.now();
  const producer = new Kafka({ clientId: 'bench-raw', brokers, logLevel: logLevel.NOTHING }).producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  for (let i = 0; i < n; i += batchSize) {
    await producer.send({
      topic,
      acks: -1,
      compression: CompressionTypes.None,
      messages: stored.slice(i, i + batchSize).map((e) => ({
        key: e.stream_id,
        value: JSON.stringify(e),
        headers: { type: e.type, schema_version: String(e.schema_version), tenant_id: e.tenant_id, event_id: e.event_id },
      })),
    });
  }
  await producer.disconnect();
  return (performance.now() - t) / 1000;
}

await rawRound(-1); // warm-up (broker, JIT)
let pub = 0;
let raw = 0;
for (let r = 0; r < rounds; r++) {
  if (r % 2 === 0) { pub += await publisherRound(r); raw += await rawRound(r); } else { raw += await rawRound(r); pub += await publisherRound(r); }
  process.stderr.write(`round ${r + 1}/${rounds} done\n`);
}
const pubRate = (n * rounds) / pub;
const rawRate = (n * rounds) / raw;
console.log(`raw kafkajs producer : ${n} events x ${rounds} rounds, ${Math.round(rawRate)} events/s`);
console.log(`publisher            : ${n} events x ${rounds} rounds, ${Math.round(pubRate)} events/s (${batchSize} per send, ${batchSize * 4} per read)`);
console.log(`ratio publisher/raw  : ${(pubRate / rawRate).toFixed(2)}x (goal >= 0.7x)`);
await db.end();
await database.drop().catch((err: unknown) => process.stderr.write(`dropping the bench database failed: ${err instanceof Error ? err.message : String(err)}\n`));
