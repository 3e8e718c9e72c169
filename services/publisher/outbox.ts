import type { StoredEvent } from '../../schemas/events.ts';
import type { Db } from '../events/db.ts';
import { rowToEvent, type EventRow } from '../events/stored-event.ts';
import type { Checkpoint, EventSink } from './event-sink.ts';
import { abortableSleep } from './abortable-sleep.ts';

export type { Checkpoint };

/** The later of two checkpoints ((tx_id, position) order). */
export function laterCheckpoint(a: Checkpoint, b: Checkpoint): Checkpoint {
  const [ta, tb] = [BigInt(a.txId), BigInt(b.txId)];
  if (ta !== tb) return ta > tb ? a : b;
  return BigInt(a.position) >= BigInt(b.position) ? a : b;
}

/** `ends[i]`: the checkpoint just after events[i] (so a batch can be sent, and checkpointed, in parts). */
export type SafeBatch = { events: StoredEvent[]; ends: Checkpoint[]; next: Checkpoint };

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
export async function readSafeBatch(db: Db, after: Checkpoint, limit: number, ack?: { name: string; checkpoint: Checkpoint }): Promise<SafeBatch> {
  // One round trip (migration 0011: the same SELECT in the publisher's system scope, plus the acknowledged
  // checkpoint's write when `ack` is given).
  const res = await db.query<EventRow & { tx_id: string }>({
    name: 'countersign_outbox_read',
    text: `SELECT r_position AS position, r_stream_id AS stream_id, r_stream_version AS stream_version, r_event_id AS event_id, r_type AS type,
                  r_schema_version AS schema_version, r_tenant_id AS tenant_id, r_data AS data, r_metadata AS metadata,
                  r_recorded_at AS recorded_at, r_prev_hash AS prev_hash, r_hash AS hash, r_tx_id AS tx_id
             FROM countersign_outbox_read($1::xid8, $2::bigint, $3, $4, $5::xid8, $6::bigint)`,
    values: [after.txId, after.position, limit, ack?.name ?? null, ack?.checkpoint.txId ?? null, ack?.checkpoint.position ?? null],
  });
  const ends = res.rows.map((r) => ({ txId: r.tx_id, position: r.position }));
  return { events: res.rows.map(rowToEvent), ends, next: ends[ends.length - 1] ?? after };
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
  /** Events per Kafka send (and so per checkpoint step). */
  batchSize: number;
  /** Events per read from Postgres (default 4 x batchSize): fewer, larger reads, sent in batchSize parts. */
  readSize?: number;
  idleMs: number;
  /**
   * After a read that drained what was waiting (less than a full read), how long to let events gather before
   * the next read (default 0). The Kafka sink's cost is per transaction, not per event: at a steady trickle,
   * each run's events would otherwise be a transaction of their own. The longest an event waits is then about
   * lingerMs plus one send; a backlog (full reads) is sent without waiting.
   */
  lingerMs?: number;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  signal: AbortSignal;
  /** Told each acknowledged send (its events' count and the checkpoint after them), and each failure. */
  onSent?: (count: number, cp: Checkpoint) => void;
  onFailure?: (err: unknown) => void;
};

const sleep = abortableSleep;

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
/** Starts work now and keeps its outcome for later, so an early failure is never an unhandled rejection. */
const settle = <T>(p: Promise<T>): Promise<Settled<T>> => p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
const unwrap = <T>(s: Settled<T>): T => {
  if (!s.ok) throw s.error;
  return s.value;
};

/** A broker's refusal of a record or batch for its size (kafkajs MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE). */
function refusedAsTooLarge(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { type, message } = e as { type?: unknown; message?: unknown };
    if (type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE' || /too large/i.test(String(message))) return true;
  }
  return false;
}

/**
 * The publisher loop: read a safe batch, send it, wait for acks, then move the checkpoint. A crash between
 * send and checkpoint write would re-send the batch, unless the sink commits the checkpoint with the events
 * (the Kafka sink does, in one transaction) and so can say where to resume; the log itself is never
 * touched, so a Kafka outage can delay publication but never blocks appends or loses an event.
 *
 * Pipelined (issue 4, performance): events are read `readSize` at a time and sent `batchSize` at a time;
 * while one read's sends are on their way to Kafka, the next read runs, and that same call (one round trip)
 * writes the checkpoint of the last acknowledged send. What keeps it correct: one send in flight at a time,
 * in order; a checkpoint is written only after its send (and so every send before it) was acknowledged;
 * reads, and so checkpoint writes, follow each other in order; after any failure the read ahead is dropped
 * and reading resumes after the last acknowledged send (whose checkpoint the next read writes).
 */
export async function runPublisher(opts: PublisherOptions): Promise<void> {
  let sink: EventSink | null = null;
  // Read in the loop, so a publisher started while Postgres is down waits for it like one that is running.
  let cp: Checkpoint | null = null;
  /** Acknowledged by Kafka, not yet written as the checkpoint (the next read writes it). */
  let unsaved: Checkpoint | null = null;
  let backoff = 250;
  let published = 0;
  const readSize = Math.max(opts.readSize ?? opts.batchSize * 4, opts.batchSize);
  let prefetch: { read: Promise<Settled<SafeBatch>>; acked: Checkpoint | null } | null = null;
  const read = (after: Checkpoint) => {
    const acked = unsaved;
    return { read: settle(readSafeBatch(opts.db, after, readSize, acked ? { name: opts.name, checkpoint: acked } : undefined)), acked };
  };
  const landed = async (p: { read: Promise<Settled<SafeBatch>>; acked: Checkpoint | null }): Promise<SafeBatch> => {
    const batch = unwrap(await p.read);
    if (p.acked && unsaved === p.acked) unsaved = null;
    return batch;
  };
  while (!opts.signal.aborted) {
    try {
      cp ??= await loadCheckpoint(opts.db, opts.name);
      if (!sink) {
        const connected = await opts.connectSink();
        sink = connected;
        // A sink that commits its checkpoint with its events knows exactly what reached it, even when a
        // publisher died after its send and before its checkpoint write here: resume after the later of the two.
        const sent = await connected.resumeFrom?.();
        if (sent && laterCheckpoint(sent, cp) === sent && (sent.txId !== cp.txId || sent.position !== cp.position)) {
          if (prefetch) await prefetch.read;
          prefetch = null;
          cp = sent;
          unsaved = sent;
          opts.log('info', 'resuming after the checkpoint the sink committed', { position: sent.position });
        }
      }
      const batch = await landed(prefetch ?? read(cp));
      prefetch = null;
      if (batch.events.length === 0) {
        await sleep(opts.idleMs, opts.signal);
        continue;
      }
      // A full read says more are probably waiting: read them while this one is sent.
      if (batch.events.length === readSize) prefetch = read(batch.next);
      // A sink that commits its checkpoint with its events takes a whole read as one unit (one Kafka
      // transaction, whose cost is per commit, not per event); the others are sent batchSize at a time.
      const step = sink.resumeFrom ? batch.events.length : opts.batchSize;
      for (let i = 0; i < batch.events.length && !opts.signal.aborted; i += step) {
        const part = batch.events.slice(i, i + step);
        const through = batch.ends[i + part.length - 1]!;
        await sink.send(part, through);
        cp = through;
        unsaved = cp;
        published += part.length;
        opts.onSent?.(part.length, cp);
      }
      if (backoff > 250) opts.log('info', 'publishing again', { position: cp.position, published });
      backoff = 250;
      if (prefetch === null && opts.lingerMs) await sleep(opts.lingerMs, opts.signal);
    } catch (err) {
      if (refusedAsTooLarge(err)) {
        // Cannot happen while the topic keeps its configuration (the write path bounds every event:
        // services/events/event-size.ts). Skipping the event would lose it; reconnecting runs ensureTopic,
        // which puts the topic's limit back, and the batch is sent again.
        opts.log('error', 'the topic refused an event as too large: its max.message.bytes was changed; restoring it and sending again', { error: err instanceof Error ? err.message : String(err), position: cp?.position });
      }
      opts.onFailure?.(err);
      opts.log('warn', 'publish failed; will retry', { error: err instanceof Error ? err.message : String(err), backoff_ms: backoff });
      // Whatever was read ahead is dropped: reading resumes from the last acknowledged batch.
      if (prefetch) await prefetch.read;
      prefetch = null;
      // Recreate the producer: kafkajs does not always recover a producer whose broker went away.
      const old = sink;
      sink = null;
      await old?.close().catch(() => {});
      await sleep(backoff, opts.signal);
      backoff = Math.min(backoff * 2, 5_000);
    }
  }
  if (prefetch) await landed(prefetch).catch(() => {});
  if (unsaved) {
    await saveCheckpoint(opts.db, opts.name, unsaved).catch((err: unknown) =>
      opts.log('warn', 'last checkpoint write failed; its batch will be sent again', { error: err instanceof Error ? err.message : String(err) }));
  }
  await sink?.close().catch(() => {});
}
