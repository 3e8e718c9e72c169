import type pg from 'pg';
import { CURRENT_SCHEMA_VERSION, EVENT_DATA, type NewEvent, type StoredEvent } from '../../schemas/events.ts';
import { CountersignError, fieldErrors } from '../errors.ts';
import { inTransaction, isConnectionError, withTenant, type Db, type Queryable } from './db.ts';
import { eventHash } from './hash-chain.ts';
import { eventRecordBytes, MAX_EVENT_RECORD_BYTES, WIDEST_POSITION } from './event-size.ts';

/** `number`: the stream must be at exactly this version (0 = must not exist). `any`: append at the head. */
export type ExpectedVersion = number | 'any';

export type AppendRequest = {
  streamId: string;
  tenantId: string;
  expectedVersion: ExpectedVersion;
  events: NewEvent[];
  recordedAt: Date;
  /** Extra writes in the same transaction (e.g. the idempotency row), run after the events are inserted under the stream lock. */
  alsoInTransaction?: (client: pg.PoolClient) => Promise<void>;
  /**
   * Runs after the rows are inserted, before COMMIT, holding the transaction open. Tests use it to make
   * transactions commit out of position order (the publisher must still miss nothing).
   */
  beforeCommit?: (client: pg.PoolClient) => Promise<void>;
  /**
   * An event computed from the stored form of the events before it (hashes included), appended after them in
   * the same statement: a run's receipt over its first events, signed without reading them back. Computed
   * again if the rows are rehashed onto another head.
   */
  seal?: (rows: readonly SealedRow[]) => NewEvent;
};

/** An event as it will be stored, less its global position (assigned by the database). */
export type SealedRow = Pick<StoredEvent, 'stream_id' | 'stream_version' | 'event_id' | 'type' | 'data' | 'recorded_at' | 'prev_hash' | 'hash'>;

export type AppendResult = { streamVersion: number; lastHash: string; duplicate: boolean };

const UNIQUE_VIOLATION = '23505';

type Head = { version: number; hash: string | null };
type Outcome = { out_status: 'ok' | 'stale' | 'conflict'; out_version: number; out_hash: string | null };

/** Migration 0011: lock, head read, version check, chained insert, in one statement (one round trip). */
const APPEND = { name: 'countersign_append', text: 'SELECT out_status, out_version, out_hash FROM countersign_append($1, $2, $3, $4::jsonb)' };

/**
 * Stream heads this process last wrote or saw, per pool: a hint only (the database checks it under the lock),
 * so an append to a stream this process wrote needs no separate head read. Bounded; oldest entries go first.
 */
const HEAD_HINTS_MAX = 10_000;
const headHints = new WeakMap<Db, Map<string, Head>>();
function hints(db: Db): Map<string, Head> {
  let m = headHints.get(db);
  if (!m) headHints.set(db, (m = new Map<string, Head>()));
  return m;
}
function remember(db: Db, key: string, head: Head): void {
  const m = hints(db);
  m.delete(key);
  m.set(key, head);
  if (m.size > HEAD_HINTS_MAX) m.delete(m.keys().next().value!);
}

/** Autocommit attempts against a guessed head before taking the lock across the head read (always progresses). */
const OPTIMISTIC_ATTEMPTS = 2;

/**
 * The one write path to the event log (style item 7).
 *
 * How: the rows are hashed here against the head we believe current (version 0 for a new stream, else the
 * head this process last saw), and `countersign_append` (migration 0011) takes the stream's advisory lock,
 * reads the head and inserts them only if they chain onto it, in one round trip and (without callbacks) the
 * statement's own transaction. A wrong guess writes nothing and returns the head ('stale'); we rehash and try
 * again, and after OPTIMISTIC_ATTEMPTS we hold the lock across the head read in an explicit transaction.
 *
 * Hazards handled here:
 * - Chains must not fork: the lock comes before the head read in the function, rows are inserted only onto the
 *   locked head, and (because a transaction gets its id at its first write, after the lock) transaction ids
 *   increase in stream order, which the publisher relies on.
 * - Truncation shows: each event's metadata carries `batch: { index, size }` of the append it was written in,
 *   so a stream that ends inside an append lost its tail after the commit (services/audit/replay.ts).
 * - Retries write nothing new: event ids are derived from their cause; when the first event's id already
 *   stands in this stream, the append is reported as a duplicate instead of a version conflict.
 */
export async function appendToStream(db: Db, req: AppendRequest): Promise<AppendResult> {
  if (req.events.length === 0) throw new CountersignError('bad_request', 'nothing to append');
  for (const e of req.events) validate(e);
  const key = `${req.tenantId}\u0000${req.streamId}`;
  // Appends from this process to one stream take turns here rather than at the database lock: each then
  // starts from the head the previous one wrote (one round trip) instead of racing it and rehashing.
  const tails = streamTails(db);
  const before = tails.get(key);
  let release!: () => void;
  const mine = new Promise<void>((resolve) => { release = resolve; });
  tails.set(key, mine);
  if (before) await before;
  try {
    return await appendAfterTurn(db, req, key);
  } finally {
    if (tails.get(key) === mine) tails.delete(key);
    release();
  }
}

/**
 * The same append, inside a transaction the caller already holds: for a change whose table rows and events
 * must commit together or not at all (an identity change and its event on the tenant's stream). The stream's
 * lock is taken by the first call and held to the caller's COMMIT, so appends to one stream still queue.
 * No callbacks and no head hints (the caller's transaction may still roll back).
 */
export async function appendInTransaction(client: pg.PoolClient, req: Omit<AppendRequest, 'alsoInTransaction' | 'beforeCommit' | 'seal'>): Promise<AppendResult> {
  if (req.events.length === 0) throw new CountersignError('bad_request', 'nothing to append');
  for (const e of req.events) validate(e);
  let out = await callAppend(client, req, { version: typeof req.expectedVersion === 'number' ? req.expectedVersion : 0, hash: null });
  if (out.out_status === 'stale') out = await callAppend(client, req, { version: out.out_version, hash: out.out_hash });
  if (out.out_status === 'conflict') {
    throw new CountersignError('conflict', `stream ${req.streamId} is at version ${out.out_version}, expected ${String(req.expectedVersion)}`, {
      extra: { stream_id: req.streamId, expected_version: req.expectedVersion, actual_version: out.out_version },
    });
  }
  if (out.out_status !== 'ok') throw new Error(`countersign_append: ${out.out_status} twice under the stream lock`);
  return { streamVersion: out.out_version, lastHash: out.out_hash!, duplicate: false };
}

const tailsByDb = new WeakMap<Db, Map<string, Promise<void>>>();
function streamTails(db: Db): Map<string, Promise<void>> {
  let m = tailsByDb.get(db);
  if (!m) tailsByDb.set(db, (m = new Map<string, Promise<void>>()));
  return m;
}

async function appendAfterTurn(db: Db, req: AppendRequest, key: string): Promise<AppendResult> {
  let guess: Head = req.expectedVersion === 0 ? { version: 0, hash: null } : (hints(db).get(key) ?? { version: typeof req.expectedVersion === 'number' ? req.expectedVersion : 0, hash: null });
  try {
    if (!req.alsoInTransaction && !req.beforeCommit) {
      for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
        const out = await callAppend(db, req, guess);
        if (out.out_status === 'ok') return done(db, key, out);
        if (out.out_status === 'conflict') return await conflict(db, null, req, key, out);
        guess = { version: out.out_version, hash: out.out_hash };
      }
    }
    return await inTransaction(db, async (client) => {
      let out = await callAppend(client, req, guess);
      // The lock is held from the first call on: the second sees the same head, so it cannot be stale.
      if (out.out_status === 'stale') out = await callAppend(client, req, { version: out.out_version, hash: out.out_hash });
      if (out.out_status === 'conflict') return await conflict(db, client, req, key, out);
      if (out.out_status !== 'ok') throw new Error(`countersign_append: ${out.out_status} twice under the stream lock`);
      if (req.alsoInTransaction) await req.alsoInTransaction(client);
      if (req.beforeCommit) await req.beforeCommit(client);
      return done(db, key, out);
    });
  } catch (err) {
    hints(db).delete(key);
    // Another writer committed the same event ids first (a retry racing its original, or an id already used
    // in this stream at another version), or the idempotency row collided.
    if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
      const dup = await withTenant(db, req.tenantId, (client) => findDuplicate(client, req));
      if (dup) return dup;
      throw new CountersignError('conflict', `append to ${req.streamId} collided with an existing event`, { cause: err });
    }
    if (isConnectionError(err)) throw CountersignError.dependency('postgres', err);
    throw err;
  }
}

/** The stored rows (hashes chained from `head`), as countersign_append takes them. */
function rowsAfter(req: AppendRequest, head: Head): string {
  const recordedAt = req.recordedAt.toISOString();
  let prevHash = head.hash as `sha256:${string}` | null;
  let version = head.version;
  const size = req.events.length + (req.seal ? 1 : 0);
  const row = (e: NewEvent, i: number) => {
    version += 1;
    const fields = {
      stream_id: req.streamId,
      stream_version: version,
      event_id: e.eventId,
      type: e.type,
      schema_version: CURRENT_SCHEMA_VERSION,
      tenant_id: req.tenantId,
      data: e.data as Record<string, unknown>,
      metadata: { ...e.metadata, batch: { index: i + 1, size } } as Record<string, unknown>,
      recorded_at: recordedAt,
      prev_hash: prevHash,
    };
    const hash = eventHash(fields);
    checkSize({ position: WIDEST_POSITION, ...fields, hash });
    prevHash = hash;
    return { stream_version: version, event_id: e.eventId, type: e.type, schema_version: CURRENT_SCHEMA_VERSION, data: fields.data, metadata: fields.metadata, recorded_at: recordedAt, prev_hash: fields.prev_hash, hash };
  };
  const rows = req.events.map(row);
  if (req.seal) {
    const sealed = req.seal(rows.map((r) => ({ stream_id: req.streamId, stream_version: r.stream_version, event_id: r.event_id, type: r.type, data: r.data, recorded_at: r.recorded_at, prev_hash: r.prev_hash, hash: r.hash })));
    validate(sealed);
    rows.push(row(sealed, rows.length));
  }
  return JSON.stringify(rows);
}

/**
 * The topic must take every event, or the publisher (which never skips one) would stop at it for every tenant
 * (services/events/event-size.ts): an event too large for it is refused here, before anything is written.
 */
function checkSize(e: StoredEvent): void {
  const bytes = eventRecordBytes(e);
  if (bytes > MAX_EVENT_RECORD_BYTES) {
    throw new CountersignError('payload_too_large', `event ${e.type} would be ${bytes} bytes on the event topic; the limit is ${MAX_EVENT_RECORD_BYTES}`, {
      extra: { event_type: e.type, bytes, limit: MAX_EVENT_RECORD_BYTES },
    });
  }
}

function validate(e: NewEvent): void {
  const parsed = EVENT_DATA[e.type].safeParse(e.data);
  if (!parsed.success) {
    throw new CountersignError('validation_failed', `event ${e.type} has invalid data`, { errors: fieldErrors(parsed.error.issues, 'data') });
  }
}

async function callAppend(q: Queryable, req: AppendRequest, head: Head): Promise<Outcome> {
  const expected = req.expectedVersion === 'any' ? null : req.expectedVersion;
  const res = await q.query<Outcome>({ ...APPEND, values: [req.tenantId, req.streamId, expected, rowsAfter(req, head)] });
  return res.rows[0]!;
}

function done(db: Db, key: string, out: Outcome): AppendResult {
  remember(db, key, { version: out.out_version, hash: out.out_hash });
  return { streamVersion: out.out_version, lastHash: out.out_hash!, duplicate: false };
}

/** The stream is not at the expected version: a retry of an append that already stands, or a real conflict. */
async function conflict(db: Db, inTx: pg.PoolClient | null, req: AppendRequest, key: string, out: Outcome): Promise<AppendResult> {
  remember(db, key, { version: out.out_version, hash: out.out_hash });
  // Inside a transaction, countersign_append has set its tenant scope; otherwise open one.
  const dup = inTx ? await findDuplicate(inTx, req) : await withTenant(db, req.tenantId, (client) => findDuplicate(client, req));
  if (dup) return dup;
  throw new CountersignError('conflict', `stream ${req.streamId} is at version ${out.out_version}, expected ${String(req.expectedVersion)}`, {
    extra: { stream_id: req.streamId, expected_version: req.expectedVersion, actual_version: out.out_version },
  });
}

async function findDuplicate(client: Queryable, req: AppendRequest): Promise<AppendResult | null> {
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
