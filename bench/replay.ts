// Replay benchmark: `countersign audit replay` work (parse, dedupe, hash chains, receipt rebuild + Ed25519
// verification, re-evaluation) over ~100k events on a Kafka topic, against a raw kafkajs consumer draining
// the same topic. Goal: ratio >= 0.3x and 100k events in under 60 s.
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/replay.ts [runs]
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { Replay } from '../services/audit/replay.ts';
import { syntheticLog } from '../services/audit/synthetic-runs.ts';
import { createKafkaSource, ensureTopic } from '../services/publisher/kafka.ts';
import { createInMemoryKeyring } from '../services/receipts/keyring.ts';

const runs = Number(process.argv[2] ?? 26_400); // ~100k events: 4 per final run, 2 per pending one
const brokers = (process.env['KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',');
const topic = `countersign.bench.replay.${randomBytes(4).toString('hex')}`;
const keyring = createInMemoryKeyring();

const log = syntheticLog(keyring, { tenantId: 'bench', runs, tag: topic, now: new Date(Date.now() - 3_600_000) });
await ensureTopic({ brokers, topic });
const producer = new Kafka({ brokers, logLevel: logLevel.NOTHING }).producer({ idempotent: true, maxInFlightRequests: 1 });
await producer.connect();
for (let i = 0; i < log.length; i += 2000) {
  await producer.send({ topic, acks: -1, messages: log.slice(i, i + 2000).map((e) => ({ key: e.stream_id, value: JSON.stringify(e) })) });
}
await producer.disconnect();
process.stderr.write(`produced ${log.length} events of ${runs} runs to ${topic}\n`);

const source = createKafkaSource({ brokers, topic });
let t = performance.now();
let n = 0;
await source.readToEnd(() => { n += 1; });
const raw = (performance.now() - t) / 1000;

t = performance.now();
const replay = new Replay({ keys: keyring.publicKeys() });
await source.readToEnd((r) => { replay.add({ value: r.value, where: `${r.partition}@${r.offset}` }); });
const report = replay.finish();
const full = (performance.now() - t) / 1000;
if (report.divergences.length) throw new Error(`unexpected divergences: ${JSON.stringify(report.divergences.slice(0, 3))}`);

console.log(`raw kafkajs consumer : ${n} records in ${raw.toFixed(2)} s (${Math.round(n / raw)} records/s)`);
console.log(`audit replay         : ${report.events} events, ${report.receipts.length} receipts verified, ${report.re_evaluated} decisions re-derived in ${full.toFixed(2)} s (${Math.round(report.events / full)} events/s)`);
console.log(`ratio replay/raw     : ${(raw / full).toFixed(2)}x (goal >= 0.3x); 100k-event time ${(full * 100_000 / report.events).toFixed(1)} s (goal < 60 s)`);
