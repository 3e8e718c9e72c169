import type pg from 'pg';
import { CURRENT_SCHEMA_VERSION, EVENT_DATA, type NewEvent } from '../../schemas/events.ts';
import { CountersignError, fieldErrors } from '../errors.ts';
import { withTenant, type Db } from './db.ts';
import { eventHash } from './hash-chain.ts';

/** `number`: the stream must be at exactly this version (0 = must not exist). `any`: append at the head. */
export type ExpectedVersion = number | 'any';

export type AppendRequest = {
  streamId: string;
  tenantId: string;
  expectedVersion: ExpectedVersion;
  events: NewEvent[];
  recordedAt: Date;
  /** Extra writes in the same transaction (e.g. the idempotency row), run after the stream lock is held. */
  alsoInTransaction?: (client: pg.PoolClient) => Promise<void>;
  /**
   * Runs after the rows are inserted, before COMMIT, holding the transaction open. Tests use it to make
   * transactions commit out of position order (the publisher must still miss nothing).
   */
  beforeCommit?: (client: pg.PoolClient) => Promise<void>;
};

export type AppendResult = { streamVersion: number; lastHash: string; duplicate: boolean };

const UNIQUE_VIOLATION = '23505';

/**
 * The one write path to the event log (style item 7).
 *
 * Hazards handled here:
 * - Chains must not fork: the stream's advisory lock is the transaction's first statement, so appends to one
 *   stream are serial, and (because a transaction gets its id at its first write, after the lock) their
 *   transaction ids increase in stream order, which the publisher relies on.
 * - Truncation shows: each event's metadata carries `batch: { index, size }` of the append it was written in,
 *   so a stream that ends inside an append lost its tail after the commit (services/audit/replay.ts).
 * - Retries write nothing new: event ids are derived from their cause; when the first event's id already
 *   stands in this stream, the append is reported as a duplicate instead of a version conflict.
 */
export async function appendToStream(db: Db, req: AppendRequest): Promise<AppendResult> {
  if (req.events.length === 0) throw new CountersignError('bad_request', 'nothing to append');
  for (const e of req.events) {
    const parsed = EVENT_DATA[e.type].safeParse(e.data);
    if (!parsed.success) {
      throw new CountersignError('validation_failed', `event ${e.type} has invalid data`, { errors: fieldErrors(parsed.error.issues, 'data') });
    }
  }
  try {
    return await withTenant(db, req.tenantId, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [req.streamId]);
      const head = await client.query<{ stream_version: number; hash: string }>(
        'SELECT stream_version, hash FROM events WHERE stream_id = $1 ORDER BY stream_version DESC LIMIT 1',
        [req.streamId],
      );
      const current = head.rows[0]?.stream_version ?? 0;
      let prevHash: string | null = head.rows[0]?.hash ?? null;
      if (req.expectedVersion !== 'any' && req.expectedVersion !== current) {
        const dup = await findDuplicate(client, req);
        if (dup) return dup;
        throw new CountersignError('conflict', `stream ${req.streamId} is at version ${current}, expected ${req.expectedVersion}`, {
          extra: { stream_id: req.streamId, expected_version: req.expectedVersion, actual_version: current },
        });
      }
      if (req.alsoInTransaction) await req.alsoInTransaction(client);

      const recordedAt = req.recordedAt.toISOString();
      const values: unknown[] = [];
      const tuples: string[] = [];
      let version = current;
      for (const [i, e] of req.events.entries()) {
        version += 1;
        const fields = {
          stream_id: req.streamId,
          stream_version: version,
          event_id: e.eventId,
          type: e.type,
          schema_version: CURRENT_SCHEMA_VERSION,
          tenant_id: req.tenantId,
          data: e.data as Record<string, unknown>,
          metadata: { ...e.metadata, batch: { index: i + 1, size: req.events.length } } as Record<string, unknown>,
          recorded_at: recordedAt,
          prev_hash: prevHash as `sha256:${string}` | null,
        };
        const hash = eventHash(fields);
        const base = values.length;
        values.push(fields.stream_id, fields.stream_version, fields.event_id, fields.type, fields.schema_version, fields.tenant_id,
          JSON.stringify(fields.data), JSON.stringify(fields.metadata), recordedAt, fields.prev_hash, hash);
        tuples.push(`(${Array.from({ length: 11 }, (_, i) => `$${base + i + 1}`).join(', ')})`);
        prevHash = hash;
      }
      await client.query(
        `INSERT INTO events (stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash)
         VALUES ${tuples.join(', ')}`,
        values,
      );
      if (req.beforeCommit) await req.beforeCommit(client);
      return { streamVersion: version, lastHash: prevHash!, duplicate: false };
    });
  } catch (err) {
    // Another writer committed the same event ids between our head read and insert (only possible for
    // ids that reach the log through another stream lock, i.e. a bug) or the idempotency row collided.
    if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
      const dup = await withTenant(db, req.tenantId, (client) => findDuplicate(client, req));
      if (dup) return dup;
      throw new CountersignError('conflict', `append to ${req.streamId} collided with an existing event`, { cause: err });
    }
    throw err;
  }
}

async function findDuplicate(client: pg.PoolClient, req: AppendRequest): Promise<AppendResult | null> {
  const ids = req.events.map((e) => e.eventId);
  const found = await client.query<{ event_id: string; stream_id: string }>(
    'SELECT event_id, stream_id FROM events WHERE event_id = ANY($1::text[])',
    [ids],
  );
  if (found.rowCount === 0) return null;
  if (found.rowCount !== ids.length || found.rows.some((r) => r.stream_id !== req.streamId)) {
    throw new CountersignError('conflict', `append to ${req.streamId} partly overlaps events already recorded`, {
      extra: { stream_id: req.streamId, recorded: found.rows.map((r) => r.event_id) },
    });
  }
  const head = await client.query<{ stream_version: number; hash: string }>(
    'SELECT stream_version, hash FROM events WHERE stream_id = $1 ORDER BY stream_version DESC LIMIT 1',
    [req.streamId],
  );
  return { streamVersion: head.rows[0]!.stream_version, lastHash: head.rows[0]!.hash, duplicate: true };
}
