import type { StoredEvent } from '../../schemas/events.ts';
import type { Db, Queryable } from './db.ts';
import { EVENT_COLUMNS, rowToEvent, type EventRow } from './stored-event.ts';

/** Reads within the caller's scope: pass a client from withTenant (row-level security hides other tenants). */
export async function readStream(db: Queryable, streamId: string): Promise<StoredEvent[]> {
  const res = await db.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version`, [streamId]);
  return res.rows.map(rowToEvent);
}

/** Every event in global position order, page by page (for the auditor's replay from Postgres). */
export async function* readAll(db: Db, opts: { tenantId?: string; pageSize?: number } = {}): AsyncGenerator<StoredEvent> {
  const pageSize = opts.pageSize ?? 2000;
  let after = '0';
  for (;;) {
    const res = opts.tenantId
      ? await db.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE position > $1 AND tenant_id = $2 ORDER BY position LIMIT $3`, [after, opts.tenantId, pageSize])
      : await db.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2`, [after, pageSize]);
    for (const r of res.rows) yield rowToEvent(r);
    if (res.rows.length < pageSize) return;
    after = res.rows[res.rows.length - 1]!.position;
  }
}
