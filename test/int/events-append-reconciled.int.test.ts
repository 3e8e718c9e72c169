import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewEvent } from '../../schemas/events.ts';
import { appendReconciled } from '../../services/events/append-reconciled.ts';
import { createPool, withTenant, type Db } from '../../services/events/db.ts';
import { verifyChain } from '../../services/events/hash-chain.ts';
import { readStream } from '../../services/events/read-events.ts';
import { createTestDatabase } from './harness.ts';

const sent = (stream: string, version: number, recipient: string): NewEvent => ({
  type: 'NotificationSent',
  eventId: `${stream}/${version}`,
  data: { round: 1, channel: 'email', recipient, purpose: 'request' },
  metadata: {},
});

/**
 * The append a run's workflow uses (services/events/append-reconciled.ts): what the stream holds decides, by
 * id, type and data, never by id alone.
 */
describe('an append settled against what its stream holds', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: Db;
  beforeAll(async () => {
    database = await createTestDatabase();
    db = createPool(database.url, 4);
  });
  afterAll(async () => {
    await db?.end();
    await database?.drop();
  });
  const read = (stream: string) => withTenant(db, 't1', (c) => readStream(c, stream, { raw: true }));
  const append = (stream: string, expectedVersion: number, events: NewEvent[]) =>
    appendReconciled(db, { streamId: stream, tenantId: 't1', expectedVersion, events, recordedAt: new Date() });

  it('appends at the expected version and reports every event as written by this call', async () => {
    const res = await append('s1', 0, [sent('s1', 1, 'a'), sent('s1', 2, 'b')]);
    expect(res).toMatchObject({ streamVersion: 2, written: 2, adopted: [], sealed: false });
    expect(res.fresh).toHaveLength(2);
  });

  it('a retry of a batch that stands writes nothing and reports it written', async () => {
    await append('s2', 0, [sent('s2', 1, 'a')]);
    const res = await append('s2', 0, [sent('s2', 1, 'a')]);
    expect(res).toMatchObject({ streamVersion: 1, written: 1, adopted: [], fresh: [] });
    expect(await read('s2')).toHaveLength(1);
  });

  it('a batch of which the stream holds a prefix: the rest goes on after it', async () => {
    await append('s3', 0, [sent('s3', 1, 'a')]);
    const res = await append('s3', 0, [sent('s3', 1, 'a'), sent('s3', 2, 'b'), sent('s3', 3, 'c')]);
    expect(res).toMatchObject({ streamVersion: 3, written: 3, adopted: [] });
    expect(res.fresh.map((e) => e.eventId)).toEqual(['s3/2', 's3/3']);
    const events = await read('s3');
    expect(events.map((e) => e.data['recipient'])).toEqual(['a', 'b', 'c']);
    expect(verifyChain(events)).toBeNull();
  });

  it('another event at the same version and id: nothing is written, and what stands is returned to adopt', async () => {
    await append('s4', 0, [sent('s4', 1, 'a'), sent('s4', 2, 'x')]);
    // Same ids (they derive from the version), other data: an id-only check would have called this a retry.
    const res = await append('s4', 1, [sent('s4', 2, 'b'), sent('s4', 3, 'c')]);
    expect(res).toMatchObject({ streamVersion: 2, written: 0, fresh: [] });
    expect(res.adopted).toEqual([{ stream_version: 2, type: 'NotificationSent', data: { round: 1, channel: 'email', recipient: 'x', purpose: 'request' } }]);
    expect((await read('s4')).map((e) => e.data['recipient'])).toEqual(['a', 'x']);
  });

  it('the stream moved on past a batch that stands: it is written, and the events after it are returned', async () => {
    await append('s5', 0, [sent('s5', 1, 'a'), sent('s5', 2, 'b')]);
    const res = await append('s5', 0, [sent('s5', 1, 'a')]);
    expect(res).toMatchObject({ streamVersion: 2, written: 1, fresh: [] });
    expect(res.adopted.map((e) => e.data)).toEqual([{ round: 1, channel: 'email', recipient: 'b', purpose: 'request' }]);
  });

  it('diverging part-way: the matching prefix counts as written, the rest of the stream is returned', async () => {
    await append('s6', 0, [sent('s6', 1, 'a'), sent('s6', 2, 'x'), sent('s6', 3, 'y')]);
    const res = await append('s6', 0, [sent('s6', 1, 'a'), sent('s6', 2, 'b')]);
    expect(res).toMatchObject({ streamVersion: 3, written: 1, fresh: [] });
    expect(res.adopted.map((e) => e.stream_version)).toEqual([2, 3]);
    expect(await read('s6')).toHaveLength(3);
  });
});
