import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../schemas/events.ts';
import { Replay } from '../../services/audit/replay.ts';
import { syntheticLog } from '../../services/audit/synthetic-runs.ts';
import { appendToStream } from '../../services/events/append-to-stream.ts';
import { createInspectionPool, type Db } from '../../services/events/db.ts';
import { migrate } from '../../services/events/migrate.ts';
import { readAll } from '../../services/events/read-events.ts';
import { policyStreamId } from '../../services/events/stream-ids.ts';
import { createInMemoryKeyring } from '../../services/receipts/keyring.ts';
import { writtenBeforeSlashIds } from '../unit/events/legacy-log.ts';
import { stackEnv, withDatabase } from './harness.ts';

/**
 * Migration 0014 on a log written before stream ids were composed with `/`: the database is migrated up to
 * the migration before it, the old log is inserted as it was stored then, and the rest of the migrations run.
 * The renamed log must replay clean (hashes kept, receipts as signed) and its streams must go on.
 */
const keyring = createInMemoryKeyring(new Date('2024-01-01T00:00:00Z'));
const NOW = new Date('2024-05-01T12:00:00Z');
const TENANT = 'acme-corp';
const name = `cs_test_${randomBytes(5).toString('hex')}`;
const env = stackEnv();
const url = withDatabase(env.DATABASE_URL, name);
const adminUrl = withDatabase(env.DATABASE_ADMIN_URL, name);
let db: Db;
const old = writtenBeforeSlashIds(syntheticLog(keyring, { tenantId: TENANT, runs: 5, tag: 'migration', now: NOW }), keyring);

async function asOwner<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function replayPostgres() {
  const r = new Replay({ keys: keyring.publicKeys(), now: new Date(Date.now() + 3_600_000), parallel: false });
  const events: StoredEvent[] = [];
  await asOwner(async (c) => {
    await c.query(`SELECT set_config('countersign.system', 'audit', false)`);
    for await (const e of readAll(c, { raw: true })) {
      events.push(e);
      r.add({ value: JSON.stringify(e), where: `postgres:${e.position}` });
    }
  });
  return { report: r.finish(), events };
}

beforeAll(async () => {
  const admin = new pg.Client({ connectionString: env.DATABASE_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  await runner({
    databaseUrl: adminUrl, dir: path.join(import.meta.dirname, '../../services/events/migrations'), direction: 'up', migrationsTable: 'pgmigrations',
    checkOrder: true, singleTransaction: true, log: () => {},
    ignorePattern: '(\\..*|0014_.*|001[5-9]_.*|00[2-9][0-9]_.*)',
  });
  await asOwner(async (c) => {
    await c.query(`SELECT set_config('countersign.system', 'test: the log as stored before migration 0014', false)`);
    for (const e of old) {
      await c.query(
        `INSERT INTO events (stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [e.stream_id, e.stream_version, e.event_id, e.type, e.schema_version, e.tenant_id, e.data, e.metadata, e.recorded_at, e.prev_hash, e.hash],
      );
    }
  });
  await migrate(adminUrl, url);
  db = createInspectionPool(url, 2);
});

afterAll(async () => {
  await db?.end();
  const c = new pg.Client({ connectionString: env.DATABASE_ADMIN_URL });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await c.end();
});

describe('migration 0014', () => {
  it('renames every stream to its / id and the log still replays clean, receipts as they were signed', async () => {
    const { report, events } = await replayPostgres();
    expect(events).toHaveLength(old.length);
    expect(new Set(events.map((e) => e.stream_id.split('/')[0]))).toEqual(new Set(['policy', 'run']));
    expect(events.map((e) => e.hash)).toEqual(old.map((e) => e.hash));
    expect(report.divergences).toEqual([]);
    expect(report.receipts.length).toBeGreaterThan(0);
    expect(report.receipts.every((r) => r.receipt.stream_id.startsWith('run-'))).toBe(true);
  });

  it('lets a renamed stream go on under its new id, chained onto the old hashes, and wakes the policy cache', async () => {
    const listener = new pg.Client({ connectionString: url });
    await listener.connect();
    const woke = new Promise<string>((resolve) => listener.on('notification', (n) => resolve(n.payload ?? '')));
    await listener.query('LISTEN policy_changed');
    try {
      const stream = policyStreamId(TENANT, 'example');
      const res = await appendToStream(db, {
        streamId: stream, tenantId: TENANT, expectedVersion: 1, recordedAt: new Date(),
        events: [{ type: 'PolicyDeprecated', eventId: `${stream}/deprecated/after-migration`, data: { policy_id: 'example', version: 1, deprecated_by: 'prn_test' } }],
      });
      expect(res.streamVersion).toBe(2);
      expect(await woke).toBe(TENANT);
    } finally {
      await listener.end();
    }
    const { report } = await replayPostgres();
    expect(report.divergences).toEqual([]);
    expect(report.policy_chains[`${TENANT}/example`]).toBeDefined();
  });

  it('refuses changes to the log again once it has run', async () => {
    await asOwner(async (c) => {
      await c.query(`SELECT set_config('countersign.system', 'inspection', false)`);
      await expect(c.query(`UPDATE events SET stream_id = stream_id`)).rejects.toThrow(/append-only/);
    });
  });
});
