import type { StoredEvent } from '../../schemas/events.ts';
import { withSystem, type Db } from '../events/db.ts';
import { EVENT_COLUMNS, rowToEvent, type EventRow } from '../events/stored-event.ts';
import type { EventSink } from './event-sink.ts';

export type Checkpoint = { txId: string; position: string };

/**
 * Reads the next batch of committed events that is safe to publish.
 *
 * Why (tx_id, position) and not position alone: positions are taken at insert time but become visible at
 * commit, so "everything after the last position I published" skips a slow transaction's rows. Rows whose
 * transaction id is below the snapshot's xmin belong to transactions that have all ended; any row that can
 * still appear later has a larger tx_id than everything returned here, so the checkpoint never passes it.
 *
 * Hazard: ORDER BY must name the table's columns (events.tx_id), not the `tx_id` text alias of the select list,
 * which Postgres would prefer: ordering xids as text ("10000" < "9999") moved the checkpoint past rows it had
 * not sent, and defeated the (tx_id, position) index (a full sort per batch).
 */
export async function readSafeBatch(db: Db, after: Checkpoint, limit: number): Promise<{ events: StoredEvent[]; next: Checkpoint }> {
  const res = await withSystem(db, 'publisher', (c) => c.query<EventRow & { tx_id: string }>(
    `SELECT ${EVENT_COLUMNS}, tx_id::text AS tx_id FROM events
      WHERE (tx_id, position) > ($1::xid8, $2::bigint)
        AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
      ORDER BY events.tx_id, events.position
      LIMIT $3`,
    [after.txId, after.position, limit],
  ));
  const last = res.rows[res.rows.length - 1];
  return { events: res.rows.map(rowToEvent), next: last ? { txId: last.tx_id, position: last.position } : after };
}

export async function loadCheckpoint(db: Db, name: string): Promise<Checkpoint> {
  const res = await db.query<{ tx_id: string; position: string }>('SELECT tx_id::text AS tx_id, position FROM publisher_checkpoints WHERE name = $1', [name]);
  const row = res.rows[0];
  return row ? { txId: row.tx_id, position: row.position } : { txId: '0', position: '0' };
}

export async function saveCheckpoint(db: Db, name: string, cp: Checkpoint): Promise<void> {
  await db.query(
    `INSERT INTO publisher_checkpoints (name, tx_id, position, updated_at) VALUES ($1, $2::xid8, $3, now())
     ON CONFLICT (name) DO UPDATE SET tx_id = EXCLUDED.tx_id, position = EXCLUDED.position, updated_at = now()`,
    [name, cp.txId, cp.position],
  );
}

export type PublisherOptions = {
  db: Db;
  name: string;
  connectSink: () => Promise<EventSink>;
  batchSize: number;
  idleMs: number;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  signal: AbortSignal;
};

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

/**
 * The publisher loop: read a safe batch, send it, wait for acks, then move the checkpoint. A crash between
 * send and checkpoint re-sends the batch (consumers deduplicate by event id); the log itself is never
 * touched, so a Kafka outage can delay publication but never blocks appends or loses an event.
 */
export async function runPublisher(opts: PublisherOptions): Promise<void> {
  let sink: EventSink | null = null;
  let cp = await loadCheckpoint(opts.db, opts.name);
  let backoff = 250;
  let published = 0;
  while (!opts.signal.aborted) {
    try {
      const batch = await readSafeBatch(opts.db, cp, opts.batchSize);
      if (batch.events.length === 0) {
        await sleep(opts.idleMs, opts.signal);
        continue;
      }
      sink ??= await opts.connectSink();
      await sink.send(batch.events);
      await saveCheckpoint(opts.db, opts.name, batch.next);
      cp = batch.next;
      published += batch.events.length;
      if (backoff > 250) opts.log('info', 'publishing again', { position: cp.position, published });
      backoff = 250;
    } catch (err) {
      opts.log('warn', 'publish failed; will retry', { error: err instanceof Error ? err.message : String(err), backoff_ms: backoff });
      // Recreate the producer: kafkajs does not always recover a producer whose broker went away.
      const old = sink;
      sink = null;
      await old?.close().catch(() => {});
      await sleep(backoff, opts.signal);
      backoff = Math.min(backoff * 2, 5_000);
    }
  }
  await sink?.close().catch(() => {});
}
