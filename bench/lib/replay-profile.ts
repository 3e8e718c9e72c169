// The replay's own CPU cost per event, with no Kafka and no threads: the synthetic log of bench/replay.ts held in
// memory as JSON records and replayed by `new Replay({ parallel: false })` on this thread, with and without
// signature keys. Prints CPU µs per event and a digest of each report (which must not change from one commit to
// the next: the log is cached under .data/ so every run replays the same bytes). Under
// `NO_FLOOR=1 node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx` it is what bench/lib/cpuprofile-top.py summarises
// (the main thread's profile is CPU.*.0.001.cpuprofile; the other is tsx's compiler thread).
// With a fourth argument `threads`, the replay runs as the CLI runs it (one shard per core on worker threads; all
// threads' CPU counted): the threads' own cost is the difference. The threads are ended before the process exits,
// so under --cpu-prof each writes its own profile (CPU.*.<thread>.*.cpuprofile).
//   nice -n 10 node --import tsx bench/lib/replay-profile.ts [runs=26400] [rounds=2] [keys|nokeys|both] [threads]
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { StoredEvent } from '../../schemas/events.ts';
import type { PublicKeySet } from '../../schemas/receipt.ts';
import { prepareRunStart } from '../../services/decisions/start-attestation.ts';
import { eventHash } from '../../services/events/hash-chain.ts';
import { Replay } from '../../services/audit/replay.ts';
import { endIdleShardThreads } from '../../services/audit/replay-threads.ts';
import { syntheticLog } from '../../services/audit/synthetic-runs.ts';
import { canonicalJson, sha256Digest } from '../../services/receipts/canonical.ts';
import { createInMemoryKeyring } from '../../services/receipts/keyring.ts';

const runs = Number(process.argv[2] ?? 26_400);
const rounds = Number(process.argv[3] ?? 2);
const mode = process.argv[4] ?? 'both';
const threads = process.argv[5] === 'threads';
const NOW = new Date('2026-12-01T12:00:00.000Z');

type Cached = { keys: PublicKeySet; records: string[] };
const dir = path.resolve(import.meta.dirname, '..', '..', '.data');
const file = path.join(dir, `replay-profile-${runs}.json`);
let cached: Cached;
if (existsSync(file)) {
  cached = JSON.parse(readFileSync(file, 'utf8')) as Cached;
} else {
  const keyring = createInMemoryKeyring(new Date(NOW.getTime() - 86_400_000));
  const log = syntheticLog(keyring, { tenantId: 'bench', runs, tag: 'replay-profile', now: new Date(NOW.getTime() - 3_600_000) });
  cached = { keys: keyring.publicKeys(), records: log.map((e) => JSON.stringify(e)) };
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, JSON.stringify(cached));
}
const { records } = cached;
process.stderr.write(`${records.length} records of ${runs} runs\n`);

function replayOnce(keys: PublicKeySet | null): { cpuUs: number; wallMs: number; digest: string; events: number } {
  const c = process.cpuUsage();
  const t = performance.now();
  const replay = new Replay({ keys, parallel: threads ? {} : false, now: NOW });
  for (let i = 0; i < records.length; i++) replay.add({ value: records[i]!, where: `0@${i}` });
  const report = replay.finish();
  const wallMs = performance.now() - t;
  const u = process.cpuUsage(c);
  if (report.divergences.length) throw new Error(`unexpected divergences: ${JSON.stringify(report.divergences.slice(0, 3))}`);
  last = report;
  return { cpuUs: u.user + u.system, wallMs, digest: sha256Digest(report), events: report.events };
}
let last: ReturnType<Replay['finish']> | null = null;

/**
 * The honest floor of bench/replay.ts on this one thread (bench/lib/crypto-floor-worker.ts's loop): SHA-256 over
 * every event's canonical form, one Ed25519 verification per receipt and per run start, inputs parsed and made
 * into keys and buffers before the clock starts. What the replay spends beyond it is its own.
 */
function floorOnce(): number {
  const keyObjects = new Map<string, KeyObject>(cached.keys.keys.map((k) => [k.kid, createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k.x }, format: 'jwk' })]));
  const events = records.map((r) => JSON.parse(r) as StoredEvent);
  const sigs: Array<{ bytes: Buffer; key: KeyObject; sig: Buffer }> = [];
  const add = (bytes: string, s: { key_id: string; value: string }) => sigs.push({ bytes: Buffer.from(bytes, 'utf8'), key: keyObjects.get(s.key_id)!, sig: Buffer.from(s.value, 'base64url') });
  for (const r of last!.receipts) add(canonicalJson(r.receipt), r.signature);
  const requested = new Map(events.filter((e) => e.type === 'DecisionRequested').map((e) => [e.stream_id, e]));
  for (const e of events) {
    if (e.type !== 'PolicyEvaluated') continue;
    const p = prepareRunStart(requested.get(e.stream_id)!.data, e.data);
    if (!p.ok) throw new Error(p.reason);
    add(canonicalJson(p.doc), p.signature as { key_id: string; value: string });
  }
  const c = process.cpuUsage();
  let bad = 0;
  for (const e of events) if (eventHash(e) !== e.hash) bad += 1;
  for (const x of sigs) if (!verify(null, x.bytes, x.key, x.sig)) bad += 1;
  const u = process.cpuUsage(c);
  if (bad) throw new Error(`${bad} hashes or signatures failed in the floor`);
  return (u.user + u.system) / events.length;
}

const modes: Array<[string, PublicKeySet | null]> = [];
if (mode !== 'nokeys') modes.push(['with signatures', cached.keys]);
if (mode !== 'keys') modes.push(['without signatures', null]);
for (const [name, keys] of modes) {
  replayOnce(keys); // warm-up: JIT, caches
  const per: number[] = [];
  let digest = '';
  let events = 0;
  for (let r = 0; r < rounds; r++) {
    const x = replayOnce(keys);
    per.push(x.cpuUs / x.events);
    digest = x.digest;
    events = x.events;
  }
  // NO_FLOOR=1 under --cpu-prof: the floor's own preparation (a zod parse per run start) would muddle the profile.
  const withFloor = keys !== null && process.env['NO_FLOOR'] !== '1';
  const floor = withFloor ? [floorOnce(), floorOnce()] : [];
  const outside = withFloor ? ` (floor ${Math.min(...floor).toFixed(1)} µs/event, replay beyond it ${(Math.min(...per) - Math.min(...floor)).toFixed(1)})` : '';
  console.log(`${name.padEnd(19)}${threads ? ' (threads)' : ''}: ${per.map((p) => p.toFixed(1)).join(', ')} CPU µs/event (min ${Math.min(...per).toFixed(1)}) over ${events} events${outside}; report ${digest.slice(0, 23)}`);
}
await endIdleShardThreads();
