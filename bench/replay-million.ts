// `audit replay` of about 1,000,000 events (goal: under 5 minutes here): the Replay class with its defaults,
// as the CLI runs it (records read from a Kafka topic, worker threads for hashes and signatures).
// The log is the replay bench's synthetic one (services/audit/synthetic-runs.ts: 4 events per final run, 2 per
// pending one), generated on one thread per core and produced to a fresh topic chunk by chunk, so neither the
// bench nor its threads hold it whole; only the replay does, as it must (it folds every stream at the end).
//   eval "$(services/stack/stack.sh env)"; node --max-old-space-size=8192 --import tsx bench/replay-million.ts [runs]
import { generateKeyPairSync, randomBytes, createPublicKey } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Kafka, logLevel } from 'kafkajs';
import { Replay } from '../services/audit/replay.ts';
import { syntheticLog } from '../services/audit/synthetic-runs.ts';
import { createKafkaSource, ensureTopic } from '../services/publisher/kafka.ts';
import { Keyring, keyIdFor } from '../services/receipts/keyring.ts';

const runs = Number(process.argv[2] ?? 264_000); // 1,003,201 events
const brokers = (process.env['KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',');
const topic = `countersign.bench.replay-1m.${randomBytes(4).toString('hex')}`;
const tenantId = 'bench';
const now = new Date(Date.now() - 3_600_000);
const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');

const { privateKey } = generateKeyPairSync('ed25519');
const x = createPublicKey(privateKey).export({ format: 'jwk' }).x!;
const key = { kid: keyIdFor(Buffer.from(x, 'base64url')), x, status: 'active' as const, created_at: now.toISOString() };
const keyring = new Keyring(privateKey, [key]);

await ensureTopic({ brokers, topic });
const producer = new Kafka({ brokers, logLevel: logLevel.NOTHING }).producer({ idempotent: true, maxInFlightRequests: 1 });
await producer.connect();
let t0 = performance.now();
// Position 1: the example policy's activation, as syntheticLog writes it.
const [activation] = syntheticLog(keyring, { tenantId, runs: 0, tag: topic, now });
await producer.send({ topic, acks: -1, messages: [{ key: activation!.stream_id, value: JSON.stringify(activation) }] });
let produced = 1;
let sending = Promise.resolve();
const threads = availableParallelism();
const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
await Promise.all(Array.from({ length: threads }, (_, thread) => new Promise<void>((resolve, reject) => {
  const w = new Worker(new URL('./lib/replay-gen-worker.mjs', import.meta.url), { workerData: { pem, key, tenantId, tag: topic, now: now.toISOString(), runs, thread, threads, chunk: 4000 } });
  w.on('error', reject);
  w.on('message', (m: { messages: Array<{ key: string; value: string }>; done?: boolean }) => {
    // One send at a time, in arrival order: a run's events stay in order on their partition.
    sending = sending.then(() => producer.send({ topic, acks: -1, messages: m.messages })).then(() => { produced += m.messages.length; });
    if (m.done) void sending.then(() => resolve(), reject);
  });
})));
await sending;
await producer.disconnect();
process.stderr.write(`generated and produced ${produced} events of ${runs} runs to ${topic} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

const source = createKafkaSource({ brokers, topic });
process.stderr.write(`load average before the replay: ${load()}\n`);
const cpu0 = process.cpuUsage();
t0 = performance.now();
const replay = new Replay({ keys: keyring.publicKeys() });
await source.readToEnd((r) => { replay.add({ value: r.value, where: `${r.partition}@${r.offset}` }); });
const read = (performance.now() - t0) / 1000;
const report = replay.finish();
const s = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
if (report.divergences.length) throw new Error(`unexpected divergences: ${JSON.stringify(report.divergences.slice(0, 3))}`);
console.log(`machine              : ${threads} cores, load average ${load()} (after the replay)`);
console.log(`audit replay         : ${report.events} events (${report.runs} runs, ${report.receipts.length} receipts and ${report.runs} run starts verified, ${report.re_evaluated} decisions re-derived)`);
console.log(`time                 : ${s.toFixed(1)} s (${read.toFixed(1)} s reading the topic while checking hashes, ${(s - read).toFixed(1)} s finishing), ${Math.round(report.events / s)} events/s, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s of CPU (goal < 300 s)`);
console.log(`peak resident memory : ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`);
