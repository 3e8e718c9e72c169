import type { StoredEvent } from '../../schemas/events.ts';

export type EventRow = {
  position: string;
  stream_id: string;
  stream_version: number;
  event_id: string;
  type: string;
  schema_version: number;
  tenant_id: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  recorded_at: Date;
  prev_hash: string | null;
  hash: string;
};

export const EVENT_COLUMNS =
  'position, stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash';

export function rowToEvent(r: EventRow): StoredEvent {
  return {
    position: r.position,
    stream_id: r.stream_id,
    stream_version: r.stream_version,
    event_id: r.event_id,
    type: r.type,
    schema_version: r.schema_version,
    tenant_id: r.tenant_id,
    data: r.data,
    metadata: r.metadata,
    recorded_at: r.recorded_at.toISOString(),
    prev_hash: r.prev_hash,
    hash: r.hash,
  };
}
