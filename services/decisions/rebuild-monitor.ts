import { CountersignError } from '../errors.ts';
import { isConnectionError, type Db } from '../events/db.ts';

export type RebuildReport = { events_read: number; rows: number; duration_ms: number; events_per_second: number };

/**
 * Drops the monitor's rows and projects them again from the whole log (countersign_monitor_rebuild, migration
 * 0024: the live trigger's own function, in one transaction). For after a restore, or a change of the
 * projection's SQL. Appends keep working meanwhile; those that touch the projection wait for it to commit.
 */
export async function rebuildMonitor(db: Db): Promise<RebuildReport> {
  const started = performance.now();
  try {
    const res = await db.query<{ events_read: string; rows_projected: string }>('SELECT events_read, rows_projected FROM countersign_monitor_rebuild()');
    const duration = performance.now() - started;
    const read = Number(res.rows[0]!.events_read);
    return { events_read: read, rows: Number(res.rows[0]!.rows_projected), duration_ms: Math.round(duration), events_per_second: duration > 0 ? Math.round((read / duration) * 1000) : 0 };
  } catch (err) {
    if (isConnectionError(err)) throw CountersignError.dependency('postgres', err);
    throw err;
  }
}
