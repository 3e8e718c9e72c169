import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../../schemas/events.ts';
import { upcast, upcasterKey, UpcastError, UPCASTERS, type Upcaster } from '../../../services/events/upcast.ts';

// A fabricated history: "Widget" v0 kept a flat `who` string, v1 splits it into a structured actor.
const v0: StoredEvent = {
  position: '7', stream_id: 'widget-1', stream_version: 1, event_id: 'w/1', type: 'Widget', schema_version: 0,
  tenant_id: 't', data: { who: 'alice@example.com' }, metadata: {}, recorded_at: '2024-01-01T00:00:00.000Z',
  prev_hash: null, hash: `sha256:${'0'.repeat(64)}`,
};
const toV1: Upcaster = (d) => ({ actor: { email: d['who'], kind: 'person' } });
const registry = new Map([[upcasterKey('Widget', 0), toV1]]);

describe('upcast', () => {
  it('turns an old shape into the current one at read time, keeping the stored hash', () => {
    const out = upcast(v0, registry, 1);
    expect(out.data).toEqual({ actor: { email: 'alice@example.com', kind: 'person' } });
    expect(out.schema_version).toBe(1);
    expect(out.hash).toBe(v0.hash);
    expect(v0.data).toEqual({ who: 'alice@example.com' }); // the stored event itself is untouched
  });

  it('chains steps across several versions', () => {
    const toV2: Upcaster = (d) => ({ ...d, tags: [] });
    const out = upcast(v0, new Map([...registry, [upcasterKey('Widget', 1), toV2]]), 2);
    expect(out.data).toEqual({ actor: { email: 'alice@example.com', kind: 'person' }, tags: [] });
  });

  it('passes current events through unchanged', () => {
    const current = { ...v0, schema_version: 1 };
    expect(upcast(current, registry, 1)).toBe(current);
  });

  it('refuses to guess: a missing step or a version from the future throws UpcastError', () => {
    expect(() => upcast(v0, new Map(), 1)).toThrow(UpcastError);
    expect(() => upcast({ ...v0, schema_version: 3 }, registry, 1)).toThrow(/newer than this reader/);
  });

  it('today every event type is at its current version, so the registry is empty', () => {
    expect(UPCASTERS.size).toBe(0);
  });
});
