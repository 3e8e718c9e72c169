import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../schemas/events.ts';
import { Replay, type ReplayReport } from '../../services/audit/replay.ts';
import { appendSyntheticRuns } from '../../services/audit/synthetic-runs.ts';
import { runStreamId } from '../../services/decisions/ids.ts';
import { createInspectionPool } from '../../services/events/db.ts';
import { eventHash } from '../../services/events/hash-chain.ts';
import { EVENT_COLUMNS, rowToEvent, type EventRow } from '../../services/events/stored-event.ts';
import { createKafkaSink, createKafkaSource, ensureTopic } from '../../services/publisher/kafka.ts';
import { buildReceipt } from '../../services/receipts/build-receipt.ts';
import { sha256Digest } from '../../services/receipts/canonical.ts';
import { createInMemoryKeyring } from '../../services/receipts/keyring.ts';
import { signReceipt } from '../../services/receipts/sign.ts';
import { createTestDatabase, stackEnv } from './harness.ts';

/**
 * The tamper suite: an attacker with superuser access to a copy of the data (triggers disabled) changes the
 * log in eight ways; `audit replay` must detect every one, from Postgres and from Kafka (the tampered rows
 * produced to a fresh topic), and name the first bad position. Where the attacker can recompute hashes, they
 * do (rechain): the chain alone would not show it, signatures and the coverage rules must.
 */
const keyring = createInMemoryKeyring();
const RUNS = 10; // run 9 asks for $609: pending approval, no receipt
const superUrl = (db: string) => {
  const u = new URL(process.env['DATABASE_SUPER_URL'] ?? '');
  u.pathname = `/${db}`;
  return u.toString();
};

type Tamper = (c: pg.Client, ids: string[]) => Promise<{ stream: string; position: string; problem: RegExp }>;

async function rows(c: pg.Client, stream?: string): Promise<StoredEvent[]> {
  const res = stream
    ? await c.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version`, [stream])
    : await c.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events ORDER BY position`);
  return res.rows.map(rowToEvent);
}
const at = async (c: pg.Client, stream: string, version: number) => (await rows(c, stream)).find((e) => e.stream_version === version)!;

/** The attacker who knows the hash function: recompute one stream's chain after an edit. */
async function rechain(c: pg.Client, stream: string): Promise<void> {
  let prev: string | null = null;
  for (const e of await rows(c, stream)) {
    const hash = eventHash({ ...e, prev_hash: prev });
    await c.query('UPDATE events SET prev_hash = $2, hash = $3 WHERE position = $1', [e.position, prev, hash]);
    prev = hash;
  }
}

async function resign(c: pg.Client, stream: string, sign: (body: StoredEvent[]) => object): Promise<string> {
  const events = await rows(c, stream);
  const issued = events.find((e) => e.type === 'ReceiptIssued')!;
  const signature = sign(events.filter((e) => e.stream_version < issued.stream_version));
  await c.query(`UPDATE events SET data = jsonb_set(data, '{signature}', $2::jsonb) WHERE position = $1`, [issued.position, JSON.stringify(signature)]);
  await rechain(c, stream);
  return issued.position;
}

const CASES: Array<[string, Tamper]> = [
  ['one byte of a payload changed', async (c, ids) => {
    const s = runStreamId(ids[0]!);
    const e = await at(c, s, 1);
    await c.query(`UPDATE events SET data = jsonb_set(data, '{request,context,amount}', to_jsonb((data #>> '{request,context,amount}')::int + 1)) WHERE position = $1`, [e.position]);
    return { stream: s, position: e.position, problem: /hash does not match the content/ };
  }],
  ['a row deleted from the middle of a stream', async (c, ids) => {
    const s = runStreamId(ids[1]!);
    await c.query('DELETE FROM events WHERE stream_id = $1 AND stream_version = 2', [s]);
    return { stream: s, position: (await at(c, s, 3)).position, problem: /stream version 3, expected 2/ };
  }],
  ['two rows reordered', async (c, ids) => {
    const s = runStreamId(ids[2]!);
    await c.query('UPDATE events SET stream_version = 1000 WHERE stream_id = $1 AND stream_version = 2', [s]);
    await c.query('UPDATE events SET stream_version = 2 WHERE stream_id = $1 AND stream_version = 3', [s]);
    await c.query('UPDATE events SET stream_version = 3 WHERE stream_id = $1 AND stream_version = 1000', [s]);
    return { stream: s, position: (await at(c, s, 2)).position, problem: /prev_hash does not match|hash does not match/ };
  }],
  ['a forged row inserted with a correct hash chain', async (c, ids) => {
    const s = runStreamId(ids[3]!);
    const finalized = await at(c, s, 3);
    const head = await at(c, s, 4);
    const forged = { ...finalized, stream_version: 5, event_id: `${ids[3]}/5`, data: { ...finalized.data, decision: 'DENY', reason: 'forged' }, metadata: { batch: { index: 1, size: 1 } }, recorded_at: head.recorded_at, prev_hash: head.hash };
    const hash = eventHash(forged);
    const res = await c.query<{ position: string }>(
      `INSERT INTO events (stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash)
       VALUES ($1, 5, $2, $3, 1, $4, $5, $6, $7, $8, $9) RETURNING position::text`,
      [s, forged.event_id, forged.type, forged.tenant_id, JSON.stringify(forged.data), JSON.stringify(forged.metadata), forged.recorded_at, forged.prev_hash, hash],
    );
    return { stream: s, position: res.rows[0]!.position, problem: /covered by no signature/ };
  }],
  ['the tail of a stream truncated (its receipt)', async (c, ids) => {
    const s = runStreamId(ids[4]!);
    await c.query(`DELETE FROM events WHERE stream_id = $1 AND type = 'ReceiptIssued'`, [s]);
    return { stream: s, position: (await at(c, s, 1)).position, problem: /final but has no receipt/ };
  }],
  ['the tail of a stream truncated inside an append', async (c, ids) => {
    const s = runStreamId(ids[5]!);
    await c.query('DELETE FROM events WHERE stream_id = $1 AND stream_version >= 3', [s]);
    return { stream: s, position: (await at(c, s, 2)).position, problem: /inside an atomic append \(event 2 of 3\)/ };
  }],
  ['a policy snapshot swapped (hashes recomputed)', async (c) => {
    const p = (await rows(c)).find((e) => e.type === 'PolicyActivated')!;
    await c.query(`UPDATE events SET data = jsonb_set(data, '{document,rules,1,decision}', '"DENY"') WHERE position = $1`, [p.position]);
    await rechain(c, p.stream_id);
    return { stream: p.stream_id, position: p.position, problem: /does not match its document/ };
  }],
  ['a receipt signature replaced by another receipt’s', async (c, ids) => {
    const s = runStreamId(ids[6]!);
    const other = (await rows(c, runStreamId(ids[7]!))).find((e) => e.type === 'ReceiptIssued')!;
    const position = await resign(c, s, () => other.data['signature'] as object);
    return { stream: s, position, problem: /receipt signature: bad_signature/ };
  }],
  ['a receipt signed with an unknown key', async (c, ids) => {
    const s = runStreamId(ids[8]!);
    const stranger = createInMemoryKeyring();
    const position = await resign(c, s, (body) => signReceipt(buildReceipt(body)!, stranger).signature);
    return { stream: s, position, problem: /receipt signature: unknown_key/ };
  }],
];

describe('audit replay detects tampering with a copy of the data, from Postgres and from Kafka', () => {
  let base: Awaited<ReturnType<typeof createTestDatabase>>;
  let baseName: string;
  let ids: string[];
  const copies: string[] = [];
  const brokers = stackEnv().KAFKA_BROKERS.split(',');

  beforeAll(async () => {
    expect(process.env['DATABASE_SUPER_URL'], 'the tamper suite needs DATABASE_SUPER_URL (stack.sh env)').toBeTruthy();
    base = await createTestDatabase();
    baseName = new URL(base.url).pathname.slice(1);
    const db = createInspectionPool(base.url, 2);
    ids = await appendSyntheticRuns(db, keyring, { tenantId: 'acme', runs: RUNS, tag: randomBytes(4).toString('hex'), now: new Date(Date.now() - 2 * 3_600_000) });
    await db.end();
  });
  afterAll(async () => {
    const admin = new pg.Client({ connectionString: process.env['DATABASE_SUPER_URL'] });
    await admin.connect();
    for (const name of copies) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
    await base?.drop();
  });

  /** A copy of the data, opened as superuser with the append-only triggers disabled. */
  async function tamperedCopy(tamper?: Tamper) {
    const name = `${baseName}_t${copies.length}`;
    copies.push(name);
    const admin = new pg.Client({ connectionString: process.env['DATABASE_SUPER_URL'] });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${baseName}`);
    await admin.end();
    const c = new pg.Client({ connectionString: superUrl(name) });
    await c.connect();
    try {
      await c.query('ALTER TABLE events DISABLE TRIGGER USER');
      const expected = tamper ? await tamper(c, ids) : null;
      return { expected, events: await rows(c) };
    } finally {
      await c.end();
    }
  }

  const replayOf = (records: Array<{ value: string | null; where: string }>): ReplayReport => {
    const r = new Replay({ keys: keyring.publicKeys() });
    for (const rec of records) r.add(rec);
    return r.finish();
  };

  async function viaKafka(events: StoredEvent[], extra: string[] = []): Promise<ReplayReport> {
    const topic = `countersign.test.tamper.${randomBytes(5).toString('hex')}`;
    await ensureTopic({ brokers, topic });
    const sink = await createKafkaSink({ brokers, topic });
    await sink.send(events);
    await sink.close();
    if (extra.length) {
      const producer = new Kafka({ brokers, logLevel: logLevel.NOTHING }).producer();
      await producer.connect();
      await producer.send({ topic, messages: extra.map((value) => ({ key: 'junk', value })) });
      await producer.disconnect();
    }
    const records: Array<{ value: string | null; where: string }> = [];
    await createKafkaSource({ brokers, topic }).readToEnd((r) => { records.push({ value: r.value, where: `kafka:${r.partition}@${r.offset}` }); });
    return replayOf(records);
  }

  it('finds nothing wrong with the untouched copy, from either source; malformed Kafka records are reported, never crash', async () => {
    const { events } = await tamperedCopy();
    const pgReport = replayOf(events.map((e) => ({ value: JSON.stringify(e), where: `postgres:${e.position}` })));
    expect(pgReport.divergences).toEqual([]);
    expect(pgReport.receipts).toHaveLength(RUNS - 1);
    expect(pgReport.re_evaluated).toBe(RUNS);

    const unknownType = { ...events[1]!, event_id: 'junk/1', stream_id: 'run/junk', type: 'SomethingElse' };
    const k = await viaKafka(events, ['not json at all', JSON.stringify({ type: 'DecisionRequested', data: {} }), JSON.stringify(unknownType)]);
    expect(k.receipts).toHaveLength(RUNS - 1);
    expect(k.divergences.map((d) => d.problem)).toEqual(expect.arrayContaining(['record is not JSON', expect.stringMatching(/^record is not an event/)]));
    expect(k.divergences.some((d) => d.stream_id === 'run/junk')).toBe(true);
    expect(k.divergences).toHaveLength(3);
  });

  it.each(CASES)('%s: detected, first bad position named (Postgres and Kafka)', async (_name, tamper) => {
    const { expected, events } = await tamperedCopy(tamper);
    const first = { stream_id: expected!.stream, position: expected!.position, problem: expect.stringMatching(expected!.problem) };
    const fromPg = replayOf(events.map((e) => ({ value: JSON.stringify(e), where: `postgres:${e.position}` })));
    expect(fromPg.divergences[0]).toEqual(first);
    const fromKafka = await viaKafka(events);
    expect(fromKafka.divergences[0]).toEqual(first);
  });

  it('the receipts in the untouched copy rebuild byte-identically from Kafka and Postgres', async () => {
    const { events } = await tamperedCopy();
    const a = replayOf(events.map((e) => ({ value: JSON.stringify(e), where: e.position })));
    const b = await viaKafka(events);
    const digests = (r: ReplayReport) => r.receipts.map((x) => sha256Digest(x)).sort();
    expect(digests(b)).toEqual(digests(a));
  });
});
