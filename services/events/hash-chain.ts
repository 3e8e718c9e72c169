import { sha256Digest } from '../receipts/canonical.ts';
import type { StoredEvent } from '../../schemas/events.ts';
import { legacyStreamId } from './stream-ids.ts';

export type HashedFields = Omit<StoredEvent, 'position' | 'hash'>;

/**
 * An event's hash covers every field but its global position (assigned by the database, and not part of
 * the stream's own history) and the hash itself; prev_hash links it to the stream's previous event.
 */
export function eventHash(e: HashedFields): `sha256:${string}` {
  return sha256Digest({
    stream_id: e.stream_id,
    stream_version: e.stream_version,
    event_id: e.event_id,
    type: e.type,
    schema_version: e.schema_version,
    tenant_id: e.tenant_id,
    data: e.data,
    metadata: e.metadata,
    recorded_at: e.recorded_at,
    prev_hash: e.prev_hash,
  });
}

/**
 * Whether an event's recorded hash is its content's. The hash covers the stream id the event was appended
 * under; events appended before stream ids were composed with `/` were renamed by migration 0014 with their
 * hashes kept, so for those the `-` form of the same id (legacyStreamId) is what the hash covers. That second
 * form adds no way to move an event: it names the same stream given the event's tenant, which the hash also
 * covers and replay checks against the id. Content with no canonical form (a lone surrogate) matches nothing.
 */
export function eventHashMatches(e: HashedFields & { hash: string }): boolean {
  try {
    if (eventHash(e) === e.hash) return true;
    const legacy = legacyStreamId(e.stream_id);
    return legacy !== null && eventHash({ ...e, stream_id: legacy }) === e.hash;
  } catch {
    return false;
  }
}

export type ChainBreak = { stream_id: string; position: string; stream_version: number; problem: string };

/**
 * Verifies one stream's events (in stream order): versions contiguous from 1, each prev_hash equal to the
 * previous hash, each hash recomputed. Returns the first break, or null. `hashMatches` may answer the last
 * check from elsewhere (the replay's worker threads compute it over the same event).
 */
export function verifyChain(events: readonly StoredEvent[], hashMatches: (e: StoredEvent) => boolean = eventHashMatches): ChainBreak | null {
  let prev: StoredEvent | undefined;
  for (const e of events) {
    const at = { stream_id: e.stream_id, position: e.position, stream_version: e.stream_version };
    const expectedVersion = prev ? prev.stream_version + 1 : 1;
    if (e.stream_version !== expectedVersion) return { ...at, problem: `stream version ${e.stream_version}, expected ${expectedVersion}` };
    if (e.prev_hash !== (prev ? prev.hash : null)) return { ...at, problem: 'prev_hash does not match the previous event' };
    if (!hashMatches(e)) return { ...at, problem: 'hash does not match the content' };
    prev = e;
  }
  return null;
}
