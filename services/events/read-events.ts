import type { StoredEvent } from '../../schemas/events.ts';
import pg from 'pg';
import { CountersignError } from '../errors.ts';
import { isConnectionError, type Db, type Queryable } from './db.ts';
import { PLATFORM_SCOPE } from './stream-ids.ts';
import { EVENT_COLUMNS, rowToEvent, type EventRow } from './stored-event.ts';
import { upcast, UPCASTERS, type UpcasterRegistry } from './upcast.ts';

/**
 * `raw`: the events exactly as stored (schema_version and data untouched), for the auditor who verifies hashes.
 * Otherwise old schemaVersions are upcast to the current shape (services/events/upcast.ts).
 */
export type ReadOptions = { raw?: boolean; upcasters?: UpcasterRegistry };

const reader = (opts: ReadOptions) => (opts.raw ? (e: StoredEvent) => e : (e: StoredEvent) => upcast(e, opts.upcasters ?? UPCASTERS));

/** Reads within the caller's scope: pass a client from withTenant (row-level security hides other tenants). */
export async function readStream(db: Queryable, streamId: string, opts: ReadOptions = {}): Promise<StoredEvent[]> {
  const res = await db.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version`, [streamId]);
  return res.rows.map(rowToEvent).map(reader(opts));
}

/** The events of several streams, in one query: each stream's events in version order (a stream with none is absent). */
export async function readStreams(db: Queryable, streamIds: readonly string[], opts: ReadOptions = {}): Promise<Map<string, StoredEvent[]>> {
  const out = new Map<string, StoredEvent[]>();
  if (streamIds.length === 0) return out;
  const res = await db.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = ANY($1::text[]) ORDER BY stream_id, stream_version`, [streamIds]);
  const read = reader(opts);
  for (const row of res.rows) {
    const e = read(rowToEvent(row));
    const list = out.get(e.stream_id);
    if (list) list.push(e);
    else out.set(e.stream_id, [e]);
  }
  return out;
}

/**
 * One stream (or its events after `afterVersion`), read in a tenant's scope in one round trip, for reads on a request's critical path (withTenant
 * costs three: BEGIN with the scope, the read, COMMIT). The scope and the read go as one simple-protocol
 * query, which Postgres runs as one implicit transaction: the scope is set transaction-locally, so row-level
 * security (migration 0002) sees it in the read and it ends with it, never reaching the pooled connection's
 * next user. Values are escaped literals (the simple protocol takes no parameters).
 */
export async function readTenantStream(db: Db, tenantId: string, streamId: string, opts: ReadOptions & { afterVersion?: number } = {}): Promise<StoredEvent[]> {
  const after = opts.afterVersion ?? 0;
  if (!Number.isSafeInteger(after) || after < 0) throw new Error(`readTenantStream: afterVersion ${after} is not a version`);
  const rows = await queryInTenant<EventRow>(db, tenantId, (lit) => `SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = ${lit(streamId)} AND stream_version > ${after} ORDER BY stream_version`);
  return rows.map(rowToEvent).map(reader(opts));
}

/**
 * One read-only statement in a tenant's scope, in one round trip (see readTenantStream): `build` writes the
 * statement with every value passed through `lit`, which makes it an escaped literal.
 */
export async function queryInTenant<R>(db: Db, tenantId: string, build: (lit: (value: string) => string) => string): Promise<R[]> {
  if (!tenantId) throw new Error('queryInTenant needs a tenant id');
  const statement = build((value) => pg.escapeLiteral(value));
  let results: unknown;
  try {
    results = await db.query(`SELECT set_config('countersign.tenant_id', ${pg.escapeLiteral(tenantId)}, true); ${statement}`);
  } catch (err) {
    throw isConnectionError(err) ? CountersignError.dependency('postgres', err) : err;
  }
  const read = (results as Array<{ rows: R[] }>)[1];
  if (!read) throw new Error('queryInTenant: the statement answered no result');
  return read.rows;
}

/**
 * Every event in global position order, page by page (for the auditor's replay from Postgres). Row-level
 * security (migration 0002) applies: pass a client in the `audit` system scope to see every tenant.
 */
export async function* readAll(db: Queryable, opts: ReadOptions & { tenantId?: string | undefined; pageSize?: number } = {}): AsyncGenerator<StoredEvent> {
  const pageSize = opts.pageSize ?? 2000;
  const read = reader(opts);
  let after = '0';
  for (;;) {
    const res = opts.tenantId
      // One tenant's events, and the platform's: platform policies decide that tenant's runs too.
      ? await db.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE position > $1 AND tenant_id = ANY($2::text[]) ORDER BY position LIMIT $3`, [after, [opts.tenantId, PLATFORM_SCOPE], pageSize])
      : await db.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2`, [after, pageSize]);
    for (const r of res.rows) yield read(rowToEvent(r));
    if (res.rows.length < pageSize) return;
    after = res.rows[res.rows.length - 1]!.position;
  }
}
