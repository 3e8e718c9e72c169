// Replay benchmark: `countersign audit replay` work (parse, dedupe, hash chains, receipt rebuild + Ed25519
// verification, re-evaluation) over ~100k events on a Kafka topic, against a raw kafkajs consumer draining
// the same topic. Goal: ratio >= 0.3x and 100k events in under 60 s.
// Rounds alternate the two (after one unmeasured warm-up read); the ratio is of the summed times, and each
// round's own ratio is printed so the spread shows. `audit replay` here is what the CLI runs: the Replay
// class with its defaults (worker threads for event hashes and receipt checks, services/audit/replay-pool.ts).
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/replay.ts [runs] [rounds]
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { Replay, type ReplayReport } from '../services/audit/replay.ts';
import { syntheticLog } from '../services/audit/synthetic-runs.ts';
import { createKafkaSource, ensureTopic } from '../services/publisher/kafka.ts';
import { createInMemoryKeyring } from '../services/receipts/keyring.ts';

const runs = Number(process.argv[2] ?? 26_400); // ~100k events: 4 per final run, 2 per pending one
const rounds = Number(process.argv[3] ?? 3);
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

async function rawRound(): Promise<{ s: number; n: number }> {
  const t = performance.now();
  let n = 0;
  await source.readToEnd(() => { n += 1; });
  return { s: (performance.now() - t) / 1000, n };
}

async function replayRound(): Promise<{ s: number; report: ReplayReport }> {
  const t = performance.now();
  const replay = new Replay({ keys: keyring.publicKeys() });
  await source.readToEnd((r) => { replay.add({ value: r.value, where: `${r.partition}@${r.offset}` }); });
  const report = replay.finish();
  const s = (performance.now() - t) / 1000;
  if (report.divergences.length) throw new Error(`unexpected divergences: ${JSON.stringify(report.divergences.slice(0, 3))}`);
  return { s, report };
}

await rawRound(); // warm-up: broker page cache, JIT
let raw = 0;
let full = 0;
let n = 0;
let report: ReplayReport | null = null;
const perRound: string[] = [];
for (let r = 0; r < rounds; r++) {
  const a = r % 2 === 0 ? await rawRound() : null;
  const b = await replayRound();
  const c = a ?? await rawRound();
  raw += c.s;
  full += b.s;
  n = c.n;
  report = b.report;
  perRound.push(`${(c.s / b.s).toFixed(2)}x (${c.s.toFixed(2)} s / ${b.s.toFixed(2)} s)`);
  process.stderr.write(`round ${r + 1}/${rounds}: raw ${c.s.toFixed(2)} s, replay ${b.s.toFixed(2)} s\n`);
}
const perReplay = full / rounds;
console.log(`raw kafkajs consumer : ${n} records, ${(raw / rounds).toFixed(2)} s per read (${Math.round((n * rounds) / raw)} records/s)`);
console.log(`audit replay         : ${report!.events} events, ${report!.receipts.length} receipts verified, ${report!.re_evaluated} decisions re-derived, ${perReplay.toFixed(2)} s per replay (${Math.round((report!.events * rounds) / full)} events/s)`);
console.log(`per round            : ${perRound.join(', ')}`);
console.log(`ratio replay/raw     : ${(raw / full).toFixed(2)}x over ${rounds} rounds (goal >= 0.3x); 100k-event time ${(perReplay * 100_000 / report!.events).toFixed(1)} s (goal < 60 s)`);
