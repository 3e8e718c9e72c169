import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewEvent, StoredEvent } from '../../schemas/events.ts';
import { appendToStream } from '../../services/events/append-to-stream.ts';
import { createInspectionPool, createPool, withTenant, type Db } from '../../services/events/db.ts';
import { eventHash, verifyChain } from '../../services/events/hash-chain.ts';
import { readStream } from '../../services/events/read-events.ts';
import { loadCheckpoint, runPublisher } from '../../services/publisher/outbox.ts';
import type { EventSink } from '../../services/publisher/event-sink.ts';
import { createTestDatabase } from './harness.ts';

const finalized = (id: string): NewEvent => ({
  type: 'DecisionFinalized',
  eventId: id,
  data: { decision: 'ALLOW', reason: 'r', matched_rule: null, constraints: {}, via: 'policy' },
  metadata: { causation_id: 'wf', correlation_id: 'dec' },
});

/**
 * The one-round-trip append (migration 0011) and the pipelined publisher: the paths a single process does not
 * take on its own (its head hints are right, its appends to one stream take turns) are forced here with
 * several pools, which stand for several processes.
 */
describe('append fast path and publisher pipeline', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let inspect: Db;
  const pools: Db[] = [];
  beforeAll(async () => {
    database = await createTestDatabase();
    inspect = createInspectionPool(database.url, 2);
    for (let i = 0; i < 3; i++) pools.push(createPool(database.url, 4));
  });
  afterAll(async () => {
    for (const p of pools) await p.end();
    await inspect?.end();
    await database?.drop();
  });
  const read = (stream: string) => withTenant(inspect, 't1', (c) => readStream(c, stream, { raw: true }));

  it('processes racing on one stream with stale head hints never fork it', async () => {
    await Promise.all(pools.flatMap((db, p) => Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; i < 15; i++) {
        await appendToStream(db, { streamId: 's-multi', tenantId: 't1', expectedVersion: 'any', events: [finalized(`m/${p}/${w}/${i}/a`), finalized(`m/${p}/${w}/${i}/b`)], recordedAt: new Date() });
      }
    })));
    const events = await read('s-multi');
    expect(events).toHaveLength(3 * 4 * 15 * 2);
    expect(verifyChain(events)).toBeNull();
    expect(new Set(events.map((e) => e.prev_hash)).size).toBe(events.length);
  });

  it('an expected version on a stream another process moved: the right head is used, or a conflict', async () => {
    const [a, b] = [pools[0]!, pools[1]!];
    await appendToStream(a, { streamId: 's-hint', tenantId: 't1', expectedVersion: 0, events: [finalized('h/1')], recordedAt: new Date() });
    await appendToStream(b, { streamId: 's-hint', tenantId: 't1', expectedVersion: 1, events: [finalized('h/2')], recordedAt: new Date() });
    // a's hint says version 1: the append at 2 must chain onto b's event, not a's memory.
    expect(await appendToStream(a, { streamId: 's-hint', tenantId: 't1', expectedVersion: 2, events: [finalized('h/3')], recordedAt: new Date() })).toMatchObject({ streamVersion: 3, duplicate: false });
    await expect(appendToStream(b, { streamId: 's-hint', tenantId: 't1', expectedVersion: 2, events: [finalized('h/3-other')], recordedAt: new Date() }))
      .rejects.toMatchObject({ code: 'conflict', extra: { expected_version: 2, actual_version: 3 } });
    // A retry through the other process is still a duplicate, not a conflict.
    expect(await appendToStream(b, { streamId: 's-hint', tenantId: 't1', expectedVersion: 2, events: [finalized('h/3')], recordedAt: new Date() })).toMatchObject({ duplicate: true, streamVersion: 3 });
    const events = await read('s-hint');
    expect(events.map((e) => e.event_id)).toEqual(['h/1', 'h/2', 'h/3']);
    expect(verifyChain(events)).toBeNull();
  });

  it('countersign_append writes nothing that does not chain onto the locked head, and only in its tenant', async () => {
    await appendToStream(pools[0]!, { streamId: 's-fn', tenantId: 't1', expectedVersion: 0, events: [finalized('f/1')], recordedAt: new Date() });
    const [head] = await read('s-fn');
    const row = (over: Partial<StoredEvent>) => {
      const fields = { stream_id: 's-fn', stream_version: 2, event_id: 'f/2', type: 'DecisionFinalized', schema_version: 1, tenant_id: 't1', data: { decision: 'ALLOW' }, metadata: {}, recorded_at: new Date().toISOString(), prev_hash: head!.hash, ...over };
      return { ...fields, hash: eventHash(fields) };
    };
    const app = new pg.Client({ connectionString: database.url });
    await app.connect();
    try {
      const call = (tenant: string, rows: unknown[]) => app.query<{ out_status: string; out_version: number }>('SELECT * FROM countersign_append($1, $2, NULL, $3::jsonb)', [tenant, 's-fn', JSON.stringify(rows)]);
      expect((await call('t1', [row({ prev_hash: `sha256:${'0'.repeat(64)}` })])).rows[0]).toMatchObject({ out_status: 'stale', out_version: 1 });
      expect((await call('t1', [row({ stream_version: 5 })])).rows[0]).toMatchObject({ out_status: 'stale', out_version: 1 });
      const first = row({});
      await expect(call('t1', [first, { ...row({ stream_version: 3, event_id: 'f/3' }), prev_hash: head!.hash }])).rejects.toThrow(/does not chain/);
      // Another tenant's scope sees no head (row-level security) and so cannot extend t1's stream either.
      expect((await call('t2', [first])).rows[0]).toMatchObject({ out_status: 'stale', out_version: 0 });
    } finally {
      await app.end();
    }
    expect((await read('s-fn')).map((e) => e.event_id)).toEqual(['f/1']);
  });

  it('the pipelined publisher drops its read-ahead after a failed send and still delivers everything, in order', async () => {
    const db = pools[2]!;
    for (let s = 0; s < 40; s++) {
      await appendToStream(db, { streamId: `s-pub-${s}`, tenantId: 't1', expectedVersion: 0, events: Array.from({ length: 5 }, (_, i) => finalized(`p/${s}/${i}`)), recordedAt: new Date() });
    }
    const all = (await inspect.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]!.n;
    const received: StoredEvent[] = [];
    let sends = 0;
    const controller = new AbortController();
    const sink: EventSink = {
      send(events) {
        sends += 1;
        // The third send fails after the fourth batch has been read ahead.
        if (sends === 3) return Promise.reject(new Error('broker went away'));
        received.push(...events);
        if (new Set(received.map((e) => e.event_id)).size >= Number(all)) controller.abort();
        return Promise.resolve();
      },
      close: () => Promise.resolve(),
    };
    const warnings: string[] = [];
    await runPublisher({ db, name: 'pipeline-test', connectSink: () => Promise.resolve(sink), batchSize: 23, idleMs: 20, log: (level, msg) => { if (level !== 'info') warnings.push(msg); }, signal: controller.signal });
    expect(warnings).toEqual(['publish failed; will retry']);
    expect(new Set(received.map((e) => e.event_id)).size).toBe(Number(all));
    expect(received).toHaveLength(Number(all)); // the failed batch was never half-delivered here, so no duplicates
    for (let s = 0; s < 40; s++) expect(received.filter((e) => e.stream_id === `s-pub-${s}`).map((e) => e.stream_version)).toEqual([1, 2, 3, 4, 5]);
    // Ordered by the column, not by its text (an alias of the same name would sort '9999' after '10108').
    const last = (await inspect.query<{ tx_id: string; position: string }>('SELECT e.tx_id::text AS tx_id, e.position FROM events e ORDER BY e.tx_id DESC, e.position DESC LIMIT 1')).rows[0]!;
    expect(await loadCheckpoint(db, 'pipeline-test')).toEqual({ txId: last.tx_id, position: last.position });
  });

  it('with a linger, a trickle of appends goes out in a few sends (each a Kafka transaction), not one each', async () => {
    const db = pools[2]!;
    const trickle = async (name: string, lingerMs: number) => {
      const received = new Set<string>();
      const sendSizes: number[] = [];
      let target = Number((await inspect.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]!.n);
      let caughtUp!: () => void;
      let drained = new Promise<void>((r) => { caughtUp = r; });
      const controller = new AbortController();
      const sink: EventSink = {
        send(events) {
          sendSizes.push(events.length);
          for (const e of events) received.add(e.event_id);
          if (received.size >= target) caughtUp();
          return Promise.resolve();
        },
        close: () => Promise.resolve(),
      };
      const running = runPublisher({ db, name, connectSink: () => Promise.resolve(sink), batchSize: 500, idleMs: 20, lingerMs, log: () => {}, signal: controller.signal });
      await drained; // the backlog of the tests before
      const before = sendSizes.length;
      drained = new Promise<void>((r) => { caughtUp = r; });
      target += 12;
      for (let i = 0; i < 12; i++) {
        await appendToStream(db, { streamId: `s-linger-${name}-${i}`, tenantId: 't1', expectedVersion: 0, events: [finalized(`l/${name}/${i}`)], recordedAt: new Date() });
        await new Promise((r) => setTimeout(r, 15));
      }
      await drained;
      controller.abort();
      await running;
      return sendSizes.length - before;
    };
    const withLinger = await trickle('linger-300', 300);
    const without = await trickle('linger-0', 0);
    expect(withLinger).toBeLessThanOrEqual(3);
    expect(without).toBeGreaterThanOrEqual(6);
  });
});
