import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewEvent } from '../../schemas/events.ts';
import { appendToStream } from '../../services/events/append-to-stream.ts';
import { createInspectionPool, type Db } from '../../services/events/db.ts';
import { createKafkaSink, createKafkaSource, ensureTopic } from '../../services/publisher/kafka.ts';
import { runPublisher } from '../../services/publisher/outbox.ts';
import { createTestDatabase, eventually, stackEnv } from './harness.ts';

const WRITERS = 8;
const TOTAL = Number(process.env['PUBLISHER_TEST_EVENTS'] ?? 100_000);
const PER_APPEND = 25;
const STREAMS = 400;

const event = (id: string): NewEvent => ({
  type: 'DecisionFinalized',
  eventId: id,
  data: { decision: 'ALLOW', reason: 'load', matched_rule: null, constraints: {}, via: 'policy' },
});

/**
 * Invariant 2 under concurrency: positions are taken at insert but become visible at commit, so with writers
 * that hold their transactions open for random times, commits land out of position order. The publisher must
 * still deliver every one of 100k events, each stream in order.
 */
describe('publisher under 8 concurrent writers with random delays inside their transactions', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: Db;
  const topic = `countersign.test.concurrency.${randomBytes(4).toString('hex')}`;
  const kafka = { brokers: stackEnv().KAFKA_BROKERS.split(','), topic };
  beforeAll(async () => {
    database = await createTestDatabase();
    db = createInspectionPool(database.url, WRITERS + 4);
    await ensureTopic(kafka);
  });
  afterAll(async () => {
    await db?.end();
    await database?.drop();
  });

  it('delivers all 100k events to Kafka, none skipped, each stream in order', async () => {
    const t0 = Date.now();
    const controller = new AbortController();
    const publisher = runPublisher({
      db,
      name: `kafka:${topic}`,
      connectSink: () => createKafkaSink(kafka),
      batchSize: 1000,
      idleMs: 20,
      log: (level, msg, fields) => { if (level !== 'info') console.log(level, msg, fields); },
      signal: controller.signal,
    });

    // Commit order vs position order, to show the hazard really occurred in this run.
    const commits: bigint[] = [];
    const appendsPerWriter = TOTAL / PER_APPEND / WRITERS;
    await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
      for (let a = 0; a < appendsPerWriter; a += 1) {
        const ids = Array.from({ length: PER_APPEND }, (_, i) => `w${w}/a${a}/e${i}`);
        let first = 0n;
        await appendToStream(db, {
          streamId: `load-${(w * 7919 + a * 31) % STREAMS}`,
          tenantId: 'load',
          expectedVersion: 'any',
          events: ids.map(event),
          recordedAt: new Date(),
          beforeCommit: async (client) => {
            first = BigInt((await client.query<{ p: string }>('SELECT min(position)::text AS p FROM events WHERE event_id = $1', [ids[0]])).rows[0]!.p);
            await new Promise((r) => setTimeout(r, Math.random() * 12));
          },
        });
        commits.push(first);
      }
    }));
    const tWritten = Date.now();
    let inversions = 0;
    let highest = 0n;
    for (const p of commits) {
      if (p < highest) inversions += 1;
      else highest = p;
    }
    expect(inversions).toBeGreaterThan(0);

    const stored = Number((await db.query<{ n: string }>('SELECT count(*)::text AS n FROM events')).rows[0]!.n);
    expect(stored).toBe(TOTAL);
    await eventually(async () => {
      const cp = await db.query<{ position: string }>('SELECT position::text FROM publisher_checkpoints WHERE name = $1', [`kafka:${topic}`]);
      const last = await db.query<{ position: string }>('SELECT events.position::text AS position FROM events ORDER BY events.tx_id DESC, events.position DESC LIMIT 1');
      return cp.rows[0]?.position === last.rows[0]!.position ? true : undefined;
    }, 120_000, 'the publisher to reach the end of the log');
    controller.abort();
    await publisher;
    const tPublished = Date.now();

    const seen = new Set<string>();
    const lastVersion = new Map<string, number>();
    let outOfOrder = 0;
    await createKafkaSource(kafka).readToEnd((r) => {
      const e = JSON.parse(r.value!) as { event_id: string; stream_id: string; stream_version: number; type: string };
      expect(r.key).toBe(e.stream_id);
      expect(r.headers).toMatchObject({ type: e.type, schema_version: '1', tenant_id: 'load', event_id: e.event_id });
      if (seen.has(e.event_id)) return; // transport duplicates are allowed
      seen.add(e.event_id);
      if (e.stream_version <= (lastVersion.get(e.stream_id) ?? 0)) outOfOrder += 1;
      lastVersion.set(e.stream_id, e.stream_version);
    });
    console.log(`written in ${tWritten - t0} ms, published ${tPublished - tWritten} ms later, read back in ${Date.now() - tPublished} ms`);
    expect(seen.size).toBe(TOTAL);
    expect(outOfOrder).toBe(0);
  }, 400_000);
});
