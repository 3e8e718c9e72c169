import { RecordedPlatformSettings, type PlatformSettings } from '../../schemas/identity.ts';
import type { z } from 'zod';
import type { EventData } from '../../schemas/events.ts';
import { appendToStream } from '../events/append-to-stream.ts';
import { withTenant, type Db } from '../events/db.ts';
import { readStream } from '../events/read-events.ts';
import { PLATFORM_SCOPE, platformSettingsStreamId } from '../events/stream-ids.ts';
import { canonicalJson } from '../receipts/canonical.ts';

/**
 * The platform's policy settings (four-eyes, validation, review timeout): they gate platform policies as a
 * tenant's settings gate its own. Event-sourced on `platform/settings` (PlatformSettingsChanged, with before
 * and after and who), read in the platform scope; no tenant can read or write that stream (migration 0022).
 */
export async function readPlatformSettings(db: Db): Promise<{ settings: z.infer<typeof RecordedPlatformSettings>; version: number }> {
  const events = await withTenant(db, PLATFORM_SCOPE, (c) => readStream(c, platformSettingsStreamId));
  const last = events.at(-1);
  if (!last) return { settings: {}, version: 0 };
  const parsed = RecordedPlatformSettings.safeParse((last.data as EventData<'PlatformSettingsChanged'>).after);
  return { settings: parsed.success ? parsed.data : {}, version: last.stream_version };
}

/** Merges `patch` into the settings (each key given replaces its value) and records the change; unchanged writes nothing. */
export async function changePlatformSettings(db: Db, by: string, patch: PlatformSettings, now = new Date()): Promise<z.infer<typeof RecordedPlatformSettings>> {
  const { settings: before, version } = await readPlatformSettings(db);
  const after = { ...before, ...patch };
  if (canonicalJson(after) === canonicalJson(before)) return before;
  await appendToStream(db, {
    streamId: platformSettingsStreamId, tenantId: PLATFORM_SCOPE, expectedVersion: version, recordedAt: now,
    events: [{ type: 'PlatformSettingsChanged', eventId: `${platformSettingsStreamId}/${version + 1}`, data: { before, after, by } }],
  });
  return after;
}
