import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewEvent } from '../../schemas/events.ts';
import { appendToStream } from '../../services/events/append-to-stream.ts';
import { createInspectionPool, withTenant, type Db } from '../../services/events/db.ts';
import { verifyChain } from '../../services/events/hash-chain.ts';
import { readStream } from '../../services/events/read-events.ts';
import { CountersignError } from '../../services/errors.ts';
import { createTestDatabase, stackEnv } from './harness.ts';

const finalized = (id: string, reason = 'r'): NewEvent => ({
  type: 'DecisionFinalized',
  eventId: id,
  data: { decision: 'ALLOW', reason, matched_rule: null, constraints: {}, via: 'policy' },
  metadata: { causation_id: 'wf-1', correlation_id: 'dec-1' },
});

describe('the event log in Postgres', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: Db;
  beforeAll(async () => {
    database = await createTestDatabase();
    db = createInspectionPool(database.url, 12);
  });
  afterAll(async () => {
    await db?.end();
    await database?.drop();
  });

  const read = (stream: string) => withTenant(db, 't1', (c) => readStream(c, stream));

  it('appends with global position, version, hash chain and the causation/correlation metadata', async () => {
    const res = await appendToStream(db, { streamId: 's-meta', tenantId: 't1', expectedVersion: 0, events: [finalized('m/1'), finalized('m/2')], recordedAt: new Date() });
    expect(res).toMatchObject({ streamVersion: 2, duplicate: false });
    const events = await read('s-meta');
    expect(events.map((e) => e.stream_version)).toEqual([1, 2]);
    expect(BigInt(events[1]!.position)).toBeGreaterThan(BigInt(events[0]!.position));
    expect(events[0]!.prev_hash).toBeNull();
    expect(events[1]!.prev_hash).toBe(events[0]!.hash);
    expect(events[0]!.metadata).toEqual({ causation_id: 'wf-1', correlation_id: 'dec-1', batch: { index: 1, size: 2 } });
    expect(verifyChain(events)).toBeNull();
  });

  it('refuses a wrong expected version with a conflict naming both versions, writing nothing', async () => {
    await appendToStream(db, { streamId: 's-conflict', tenantId: 't1', expectedVersion: 0, events: [finalized('c/1')], recordedAt: new Date() });
    const err = await appendToStream(db, { streamId: 's-conflict', tenantId: 't1', expectedVersion: 0, events: [finalized('c/other')], recordedAt: new Date() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CountersignError);
    expect(err).toMatchObject({ code: 'conflict', status: 409, extra: { stream_id: 's-conflict', expected_version: 0, actual_version: 1 } });
    expect(await read('s-conflict')).toHaveLength(1);
  });

  it('a retried append (same derived event ids) writes nothing new and says so', async () => {
    const req = { streamId: 's-retry', tenantId: 't1', expectedVersion: 0, events: [finalized('r/1'), finalized('r/2')], recordedAt: new Date() };
    await appendToStream(db, req);
    const again = await appendToStream(db, { ...req, recordedAt: new Date(Date.now() + 1000) });
    expect(again).toMatchObject({ duplicate: true, streamVersion: 2 });
    expect(await read('s-retry')).toHaveLength(2);
    // Concurrent retries of one append: exactly one writes.
    const reqs = Array.from({ length: 8 }, () => appendToStream(db, { streamId: 's-retry-2', tenantId: 't1', expectedVersion: 0, events: [finalized('r2/1')], recordedAt: new Date() }));
    const results = await Promise.all(reqs);
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    expect(await read('s-retry-2')).toHaveLength(1);
  });

  it('concurrent appends to one stream never fork its chain', async () => {
    const writers = 10;
    const perWriter = 20;
    await Promise.all(Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; i < perWriter; i += 1) {
        await appendToStream(db, { streamId: 's-race', tenantId: 't1', expectedVersion: 'any', events: [finalized(`race/${w}/${i}/a`), finalized(`race/${w}/${i}/b`)], recordedAt: new Date() });
      }
    }));
    const events = await read('s-race');
    expect(events).toHaveLength(writers * perWriter * 2);
    expect(verifyChain(events)).toBeNull();
    expect(new Set(events.map((e) => e.prev_hash)).size).toBe(events.length);
  });

  it('with one expected version, exactly one of many concurrent writers wins; the rest get conflicts', async () => {
    await appendToStream(db, { streamId: 's-optimistic', tenantId: 't1', expectedVersion: 0, events: [finalized('o/1')], recordedAt: new Date() });
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) =>
      appendToStream(db, { streamId: 's-optimistic', tenantId: 't1', expectedVersion: 1, events: [finalized(`o/2/${i}`)], recordedAt: new Date() })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r).reason.code)).toEqual(Array(7).fill('conflict'));
    expect(verifyChain(await read('s-optimistic'))).toBeNull();
  });

  it('the application role cannot UPDATE, DELETE or TRUNCATE, and does not own the table', async () => {
    await appendToStream(db, { streamId: 's-ro', tenantId: 't1', expectedVersion: 0, events: [finalized('ro/1')], recordedAt: new Date() });
    const app = new pg.Client({ connectionString: database.url });
    await app.connect();
    try {
      await app.query(`SELECT set_config('countersign.system', 'inspection', false)`);
      for (const sql of [`UPDATE events SET data = '{}' WHERE stream_id = 's-ro'`, `DELETE FROM events WHERE stream_id = 's-ro'`, 'TRUNCATE events']) {
        await expect(app.query(sql), sql).rejects.toMatchObject({ code: '42501' }); // insufficient_privilege
      }
      const owner = await app.query<{ owner: string; me: string }>(`SELECT tableowner AS owner, current_user AS me FROM pg_tables WHERE tablename = 'events'`);
      expect(owner.rows[0]!.owner).not.toBe(owner.rows[0]!.me);
      await expect(app.query('ALTER TABLE events DISABLE TRIGGER USER')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await app.end();
    }
  });

  it('triggers refuse row and statement changes even from the table owner', async () => {
    const owner = new pg.Client({ connectionString: database.adminUrl });
    await owner.connect();
    try {
      await owner.query(`SELECT set_config('countersign.system', 'inspection', false)`);
      for (const sql of [`UPDATE events SET data = '{}' WHERE stream_id = 's-ro'`, `DELETE FROM events WHERE stream_id = 's-ro'`, 'TRUNCATE events']) {
        await expect(owner.query(sql), sql).rejects.toThrow(/append-only/);
      }
    } finally {
      await owner.end();
    }
    expect(await read('s-ro')).toHaveLength(1);
  });

  it('migrations are recorded by node-pg-migrate and re-running them changes nothing', async () => {
    const owner = new pg.Client({ connectionString: database.adminUrl });
    await owner.connect();
    try {
      const applied = await owner.query<{ name: string }>('SELECT name FROM pgmigrations ORDER BY run_on, id');
      expect(applied.rows.map((r) => r.name)[0]).toBe('0001_event-log');
    } finally {
      await owner.end();
    }
    const { migrate } = await import('../../services/events/migrate.ts');
    expect(await migrate(database.adminUrl, database.url)).toEqual([]);
    expect(stackEnv().DATABASE_URL).not.toBe(stackEnv().DATABASE_ADMIN_URL);
  });
});
