import { CountersignError } from '../errors.ts';
import { isConnectionError, type Db } from '../events/db.ts';

export type RebuildReport = { events_read: number; rows: number; duration_ms: number; events_per_second: number };

/** The projections the log can rebuild, each by its migration's rebuild function (the live trigger's own fold). */
const REBUILDS = {
  monitor: 'SELECT events_read, rows_projected FROM countersign_monitor_rebuild()',
  inbox: 'SELECT events_read, rows_projected FROM countersign_inbox_rebuild()',
} as const;
export type Projection = keyof typeof REBUILDS;
export const PROJECTIONS = Object.keys(REBUILDS) as Projection[];

/**
 * Drops a projection's rows and projects them again from the whole log, in one transaction: the monitor
 * (countersign_monitor_rebuild, migration 0024) or the approvers' inbox of open rounds (countersign_inbox_rebuild,
 * migration 0026). For after a restore, or a change of the projection's SQL. Appends keep working meanwhile;
 * those that touch the projection wait for it to commit.
 */
export async function rebuildProjection(db: Db, projection: Projection): Promise<RebuildReport> {
  const started = performance.now();
  try {
    const res = await db.query<{ events_read: string; rows_projected: string }>(REBUILDS[projection]);
    const duration = performance.now() - started;
    const read = Number(res.rows[0]!.events_read);
    return { events_read: read, rows: Number(res.rows[0]!.rows_projected), duration_ms: Math.round(duration), events_per_second: duration > 0 ? Math.round((read / duration) * 1000) : 0 };
  } catch (err) {
    if (isConnectionError(err)) throw CountersignError.dependency('postgres', err);
    throw err;
  }
}

