import { z } from 'zod';
import { CountersignError } from '../errors.ts';
import type { Keyset } from '../identity/keyset.ts';

/**
 * Cursors are opaque to clients: base64url of a small JSON value. A cursor that does not decode is a 400
 * naming the `cursor` field, never a 500 or an empty page.
 */
export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function decode<T>(cursor: string, schema: z.ZodType<T>): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const ok = schema.safeParse(parsed);
  if (!ok.success) throw new CountersignError('validation_failed', 'cursor is not one this API issued', { errors: [{ path: 'querystring.cursor', message: 'invalid cursor' }] });
  return ok.data;
}

const KeysetCursor = z.strictObject({ t: z.string().min(1).max(64).regex(/^\d{4}-\d\d-\d\d[ T][\d:.+-]+$/), id: z.string().min(1).max(100) });
const PositionCursor = z.strictObject({ p: z.string().regex(/^\d{1,19}$/) });
// The monitor's (requested_at, seq): a UTC time to the microsecond as Postgres printed it, and a log position.
const MonitorCursor = z.strictObject({
  t: z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/).refine((t) => !Number.isNaN(Date.parse(t)), 'not a time'),
  s: z.string().regex(/^[1-9]\d{0,17}$/),
});

export const keysetCursor = (cursor: string | undefined): Keyset | null => (cursor === undefined ? null : decode(cursor, KeysetCursor));
export const positionCursor = (cursor: string | undefined): string | null => (cursor === undefined ? null : decode(cursor, PositionCursor).p);
export const monitorCursor = (cursor: string | undefined): { t: string; s: string } | null => (cursor === undefined ? null : decode(cursor, MonitorCursor));
export const nextCursor = (next: Keyset | null): string | null => (next ? encodeCursor(next) : null);
