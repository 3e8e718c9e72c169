import type { NewEvent, StoredEvent } from '../../schemas/events.ts';
import { sameEvent } from '../decisions/same-event.ts';
import { CountersignError } from '../errors.ts';
import { appendToStream, type AppendRequest } from './append-to-stream.ts';
import { withTenant, type Db } from './db.ts';
import { EVENT_COLUMNS, rowToEvent, type EventRow } from './stored-event.ts';
import { upcast, UPCASTERS } from './upcast.ts';

/** More than this many events after the expected version is not a lost attempt of one workflow task. */
const MAX_AHEAD = 500;
const MAX_SETTLES = 4;

export type Reconciled = {
  /** The stream's head afterwards. */
  streamVersion: number;
  /** How many of the request's events stand in the stream, in order, right after the expected version. */
  written: number;
  /** Events the stream holds after those, which this request did not send (oldest first): what a writer folds in. */
  adopted: Array<Pick<StoredEvent, 'stream_version' | 'type' | 'data'>>;
  /** The request's seal stands right after its events. */
  sealed: boolean;
  /** The events this call itself wrote (not found already stored). */
  fresh: NewEvent[];
};

/**
 * An append for a writer that owns its stream but may have lost track of what it wrote. A Temporal workflow's
 * local activity commits before the workflow task that ran it is recorded; if the worker dies in between, the
 * task's next attempt starts from a history in which that append never happened, and it may send other
 * events for the same versions (an answer handled before the notice the lost attempt recorded). Comparing ids
 * alone would take a different event at the same version for a retry, and the writer's state would part from
 * the log. Here the stream decides: events equal to what is stored (id, type and data) count as written, a
 * stored prefix of the request is completed with the rest, and whatever else the stream holds is returned for
 * the writer to adopt before it decides again. The log is never rewritten.
 */
export async function appendReconciled(db: Db, req: AppendRequest & { expectedVersion: number }): Promise<Reconciled> {
  const { seal: firstSeal, ...common } = req;
  let base = req.expectedVersion;
  let events = req.events;
  let seal = firstSeal;
  let written = 0;
  for (let settle = 0; settle < MAX_SETTLES; settle++) {
    let stored: StoredEvent[] | null = null;
    try {
      const res = await appendToStream(db, { ...common, expectedVersion: base, events, ...(seal ? { seal } : {}) });
      if (!res.duplicate) return { streamVersion: res.streamVersion, written: written + events.length, adopted: [], sealed: !!seal, fresh: events };
    } catch (err) {
      if (!(err instanceof CountersignError && err.code === 'conflict')) throw err;
    }
    stored = await readAfter(db, req.tenantId, req.streamId, base);
    let i = 0;
    while (i < events.length && i < stored.length && stored[i]!.event_id === events[i]!.eventId && sameEvent(stored[i]!, events[i]!)) i++;
    const head = stored.at(-1)?.stream_version ?? base;
    if (i === events.length) {
      let rest = stored.slice(i);
      const sealed = !!seal && rest[0]?.type === 'ReceiptIssued' && (rest[0].data as { head_version?: number }).head_version === base + i;
      if (sealed) rest = rest.slice(1);
      return { streamVersion: head, written: written + i, adopted: rest.map(adoptable), sealed, fresh: [] };
    }
    if (i < stored.length) return { streamVersion: head, written: written + i, adopted: stored.slice(i).map(adoptable), sealed: false, fresh: [] };
    // What is stored is a prefix of the request: the rest goes on after it. A seal covers a whole first batch
    // only, so it is dropped when part of that batch was already there.
    written += i;
    base += i;
    events = events.slice(i);
    if (i > 0) seal = undefined;
  }
  throw new CountersignError('conflict', `append to ${req.streamId} did not settle after ${MAX_SETTLES} attempts`, { extra: { stream_id: req.streamId } });
}

const adoptable = (e: StoredEvent) => ({ stream_version: e.stream_version, type: e.type, data: e.data });

async function readAfter(db: Db, tenantId: string, streamId: string, version: number): Promise<StoredEvent[]> {
  const rows = await withTenant(db, tenantId, (c) =>
    c.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version LIMIT $3`, [streamId, version, MAX_AHEAD + 1]));
  if (rows.rows.length > MAX_AHEAD) {
    throw new CountersignError('conflict', `stream ${streamId} is more than ${MAX_AHEAD} events past version ${version}`, { extra: { stream_id: streamId, expected_version: version } });
  }
  return rows.rows.map(rowToEvent).map((e) => upcast(e, UPCASTERS));
}
