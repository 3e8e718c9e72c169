import { CURRENT_SCHEMA_VERSION, type StoredEvent } from '../../schemas/events.ts';

/**
 * Upcasters turn an event's data from an old schemaVersion into the next one, at read time. The log is never
 * rewritten (it cannot be: it is append-only), so an event keeps the schema_version and hash it was written
 * with; readers see the current shape.
 *
 * Hazard: the hash chain covers the stored form. Verify chains on the raw events (as read from Postgres or
 * Kafka), then upcast; never hash an upcast event.
 */
export type Upcaster = (data: Record<string, unknown>, event: StoredEvent) => Record<string, unknown>;

/** Keyed by `${type}@${fromVersion}`; each entry lifts data from fromVersion to fromVersion + 1. */
export type UpcasterRegistry = ReadonlyMap<string, Upcaster>;

export const upcasterKey = (type: string, fromVersion: number) => `${type}@${fromVersion}`;

/**
 * Today's registry. Every event type is at schemaVersion 1, so it is empty; when a type's data changes shape,
 * bump CURRENT_SCHEMA_VERSION (schemas/events.ts) and add `Type@<old>` here, with a unit test of the old shape.
 */
export const UPCASTERS: UpcasterRegistry = new Map<string, Upcaster>();

export class UpcastError extends Error {
  override readonly name = 'UpcastError';
}

/**
 * The event with its data in the current shape. Versions a reader does not know (newer than `current`, or an
 * old version without an upcaster) throw UpcastError: guessing a shape would be worse than stopping.
 */
export function upcast(event: StoredEvent, registry: UpcasterRegistry = UPCASTERS, current: number = CURRENT_SCHEMA_VERSION): StoredEvent {
  if (event.schema_version === current) return event;
  if (event.schema_version > current) {
    throw new UpcastError(`${event.type} at schema version ${event.schema_version} is newer than this reader (${current})`);
  }
  let data = event.data;
  for (let v = event.schema_version; v < current; v += 1) {
    const step = registry.get(upcasterKey(event.type, v));
    if (!step) throw new UpcastError(`no upcaster for ${event.type} from schema version ${v}`);
    data = step(data, event);
  }
  return { ...event, data, schema_version: current };
}
