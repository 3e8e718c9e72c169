import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewEvent } from '../../schemas/events.ts';
import { appendToStream } from '../../services/events/append-to-stream.ts';
import { createPool, withTenant, type Db } from '../../services/events/db.ts';
import { readStream, readTenantStream } from '../../services/events/read-events.ts';
import { readActiveDelegationsTo } from '../../services/identity/delegations.ts';
import { createTestDatabase } from './harness.ts';

const finalized = (id: string): NewEvent => ({
  type: 'DecisionFinalized',
  eventId: id,
  data: { decision: 'ALLOW', reason: 'r', matched_rule: null, constraints: {}, via: 'policy' },
  metadata: { causation_id: 'wf-1', correlation_id: 'dec-1' },
});

/**
 * readTenantStream and queryInTenant (the decision and approval routes' one-round-trip reads, and the
 * worker's delegation check of an answer) keep withTenant's guarantees:
 * row-level security shows only the named tenant's rows, a tenant or stream id cannot break out of its
 * literal, and the scope ends with the read (the pool has one connection, so the next query is on it).
 */
describe('a stream read in the tenant scope in one round trip', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: Db;
  beforeAll(async () => {
    database = await createTestDatabase();
    db = createPool(database.url, 1);
    await appendToStream(db, { streamId: 'run/one', tenantId: 't1', expectedVersion: 0, events: [finalized('one/1'), finalized('one/2')], recordedAt: new Date() });
    await appendToStream(db, { streamId: 'run/two', tenantId: 't2', expectedVersion: 0, events: [finalized('two/1')], recordedAt: new Date() });
  }, 60_000);
  afterAll(async () => {
    await db?.end();
    await database?.drop();
  });

  it('reads what withTenant and readStream read', async () => {
    const one = await readTenantStream(db, 't1', 'run/one');
    expect(one.map((e) => e.event_id)).toEqual(['one/1', 'one/2']);
    expect(one).toEqual(await withTenant(db, 't1', (c) => readStream(c, 'run/one')));
  });

  it('reads only the events after a version (the long-poll\'s later reads), still in the tenant\'s scope; a version that is not one is refused', async () => {
    expect((await readTenantStream(db, 't1', 'run/one', { afterVersion: 1 })).map((e) => e.event_id)).toEqual(['one/2']);
    expect(await readTenantStream(db, 't1', 'run/one', { afterVersion: 2 })).toEqual([]);
    expect(await readTenantStream(db, 't1', 'run/two', { afterVersion: 0 })).toEqual([]);
    for (const bad of [-1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 2]) {
      await expect(readTenantStream(db, 't1', 'run/one', { afterVersion: bad })).rejects.toThrow(/is not a version/);
    }
  });

  it('attack: another tenant\'s stream, ids that try to leave their literal, and the scope after the read', async () => {
    const attempts: Array<[string, string]> = [
      ['t1', 'run/two'],
      ['t3', 'run/two'],
      ["t1', false); SELECT set_config('countersign.system', 'inspection', true); --", 'run/two'],
      ["t1'); SELECT set_config('countersign.tenant_id', 't2', true); --", 'run/two'],
      ["t2\\'", 'run/two'],
      ['t1', "run/one' OR stream_id = 'run/two"],
      ['t1', "x'; SELECT set_config('countersign.system', 'inspection', true); SELECT 1 FROM events WHERE '1' = '1"],
      ['t1', 'run/two\u0000'],
    ];
    let through = 0;
    for (const [tenant, stream] of attempts) {
      const events = await readTenantStream(db, tenant, stream).catch(() => []);
      if (events.some((e) => e.tenant_id === 't2')) through += 1;
      // The same literals through queryInTenant: a principal id that tries to leave its literal reads nothing.
      // (A NUL is refused by Postgres, as it is as a parameter.)
      const delegations = await readActiveDelegationsTo(db, tenant, stream, new Date()).catch(() => []);
      if (delegations.length > 0) through += 1;
      // The scope ended with the read: the connection's next user sees no tenant and no system scope.
      const after = (await db.query<{ tenant: string | null; system: string | null }>(
        "SELECT current_setting('countersign.tenant_id', true) AS tenant, current_setting('countersign.system', true) AS system",
      )).rows[0]!;
      if (after.tenant || after.system) through += 1;
    }
    console.log(`attack tenant-read-one-trip: ${attempts.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  });
});
