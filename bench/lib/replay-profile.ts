// The replay's own CPU cost per event, with no Kafka and no threads: the synthetic log of bench/replay.ts held in
// memory as JSON records and replayed by `new Replay({ parallel: false })` on this thread, with and without
// signature keys. Prints CPU µs per event and a digest of each report (which must not change from one commit to
// the next: the log is cached under .data/ so every run replays the same bytes). Under
// `node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx` it is what bench/lib/cpuprofile-top.py summarises.
//   nice -n 10 node --import tsx bench/lib/replay-profile.ts [runs=26400] [rounds=2] [keys|nokeys|both]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PublicKeySet } from '../../schemas/receipt.ts';
import { Replay } from '../../services/audit/replay.ts';
import { syntheticLog } from '../../services/audit/synthetic-runs.ts';
import { sha256Digest } from '../../services/receipts/canonical.ts';
import { createInMemoryKeyring } from '../../services/receipts/keyring.ts';

const runs = Number(process.argv[2] ?? 26_400);
const rounds = Number(process.argv[3] ?? 2);
const mode = process.argv[4] ?? 'both';
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
  const replay = new Replay({ keys, parallel: false, now: NOW });
  for (let i = 0; i < records.length; i++) replay.add({ value: records[i]!, where: `0@${i}` });
  const report = replay.finish();
  const wallMs = performance.now() - t;
  const u = process.cpuUsage(c);
  if (report.divergences.length) throw new Error(`unexpected divergences: ${JSON.stringify(report.divergences.slice(0, 3))}`);
  return { cpuUs: u.user + u.system, wallMs, digest: sha256Digest(report), events: report.events };
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
  console.log(`${name.padEnd(19)}: ${per.map((p) => p.toFixed(1)).join(', ')} CPU µs/event (min ${Math.min(...per).toFixed(1)}) over ${events} events; report ${digest.slice(0, 23)}`);
}
