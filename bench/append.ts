// Append benchmark: hash-chained appends through appendToStream (one event per append; tenant scope, stream
// advisory lock, head read, hash, insert, commit), to distinct streams and to one shared stream, against plain
// single-row autocommit INSERTs of the same row into a table of the same shape without row-level security,
// triggers, unique constraints or secondary indexes (the floor). 1 and 8 concurrent clients; variants run
// interleaved, round by round, in a fresh test database. Goal: append/plain >= 0.5x.
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/append.ts [rounds] [seconds per variant per round]
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { NewEvent } from '../schemas/events.ts';
import { appendToStream } from '../services/events/append-to-stream.ts';
import { createPool } from '../services/events/db.ts';
import { createTestDatabase } from '../test/int/harness.ts';

const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 2);
const tenantId = 'bench';
const run = randomBytes(3).toString('hex');

const database = await createTestDatabase();
const admin = new pg.Client({ connectionString: database.adminUrl });
await admin.connect();
const appRole = decodeURIComponent(new URL(database.url).username);
await admin.query(`CREATE TABLE plain_events (LIKE events INCLUDING DEFAULTS INCLUDING IDENTITY)`);
await admin.query(`GRANT SELECT, INSERT ON plain_events TO ${pg.escapeIdentifier(appRole)}`);
await admin.end();

const db = createPool(database.url, 8);
let seq = 0;
const event = (): NewEvent => ({
  type: 'OutcomeReported',
  eventId: `ev-${run}-${(seq += 1)}`,
  data: { status: 'succeeded', output_digest: `sha256:${'ab'.repeat(32)}`, reported_by: 'bench-agent', at: new Date().toISOString() },
  metadata: { causation_id: 'bench', correlation_id: 'bench' },
});

type Variant = { name: string; clients: number; op: (client: number) => Promise<void> };

const plainInsert = async (client: number) => {
  const e = event();
  await db.query(
    `INSERT INTO plain_events (stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [`plain-${client}`, seq, e.eventId, e.type, 1, tenantId, JSON.stringify(e.data), JSON.stringify({ ...e.metadata, batch: { index: 1, size: 1 } }),
      new Date().toISOString(), `sha256:${'cd'.repeat(32)}`, `sha256:${'ef'.repeat(32)}`],
  );
};
let streamNo = 0;
const appendDistinct = async () => {
  await appendToStream(db, { streamId: `run/${run}-${(streamNo += 1)}`, tenantId, expectedVersion: 0, events: [event()], recordedAt: new Date() });
};
const appendSame = (stream: string) => async () => {
  await appendToStream(db, { streamId: stream, tenantId, expectedVersion: 'any', events: [event()], recordedAt: new Date() });
};

const variants: Variant[] = [];
for (const clients of [1, 8]) {
  variants.push(
    { name: `plain INSERT        c=${clients}`, clients, op: plainInsert },
    { name: `append distinct     c=${clients}`, clients, op: appendDistinct },
    { name: `append same stream  c=${clients}`, clients, op: appendSame(`same-${run}-c${clients}`) },
  );
}

async function measure(v: Variant, ms: number): Promise<{ n: number; s: number }> {
  const end = performance.now() + ms;
  const t = performance.now();
  let n = 0;
  await Promise.all(Array.from({ length: v.clients }, async (_, c) => {
    while (performance.now() < end) {
      await v.op(c);
      n += 1;
    }
  }));
  return { n, s: (performance.now() - t) / 1000 };
}

// Warm-up: connections, JIT, plans.
for (const v of variants) await measure(v, 300);
const totals = new Map(variants.map((v) => [v.name, { n: 0, s: 0 }]));
for (let r = 0; r < rounds; r++) {
  // Alternate the order each round so neither variant always runs first.
  for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
    const m = await measure(v, seconds * 1000);
    const t = totals.get(v.name)!;
    t.n += m.n;
    t.s += m.s;
  }
  process.stderr.write(`round ${r + 1}/${rounds} done\n`);
}

const rate = (name: string) => { const t = totals.get(name)!; return t.n / t.s; };
for (const v of variants) console.log(`${v.name} : ${Math.round(rate(v.name))} events/s`);
for (const clients of [1, 8]) {
  const plain = rate(`plain INSERT        c=${clients}`);
  console.log(`ratio c=${clients}: distinct ${(rate(`append distinct     c=${clients}`) / plain).toFixed(2)}x, same stream ${(rate(`append same stream  c=${clients}`) / plain).toFixed(2)}x (goal >= 0.5x)`);
}
await db.end();
await database.drop().catch((err: unknown) => process.stderr.write(`dropping the bench database failed: ${err instanceof Error ? err.message : String(err)}\n`));
