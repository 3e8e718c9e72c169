import { describe, expect, it } from 'vitest';
import { encodeCursor, keysetCursor, monitorCursor, nextCursor, positionCursor } from '../../../services/api/cursor.ts';
import { CountersignError } from '../../../services/errors.ts';
import { keysetPage } from '../../../services/identity/keyset.ts';

describe('cursors', () => {
  it('round-trip keysets (microseconds kept) and positions', () => {
    const k = { t: '2025-01-02 03:04:05.123456+00', id: 'prn_abc' };
    expect(keysetCursor(nextCursor(k)!)).toEqual(k);
    expect(positionCursor(encodeCursor({ p: '9007199254740993' }))).toBe('9007199254740993');
    expect(keysetCursor(undefined)).toBeNull();
  });

  it.each(['not-a-cursor', encodeCursor({ p: '1; DROP TABLE x' }), encodeCursor({ t: 'yesterday', id: 'x' }), encodeCursor({ t: '2025-01-02 03:04:05+00', id: 'x', extra: 1 }), ''])(
    'a cursor this API did not issue is a 400 naming the cursor: %s',
    (bad) => {
      const decode = () => (bad.includes('eyJwIj') ? positionCursor(bad) : keysetCursor(bad));
      expect(decode).toThrow(CountersignError);
      try {
        decode();
      } catch (err) {
        expect((err as CountersignError).status).toBe(400);
        expect((err as CountersignError).errors?.[0]?.path).toBe('querystring.cursor');
      }
    },
  );

  it('monitor cursors carry (requested_at to the microsecond, seq) and nothing else', () => {
    const c = { t: '2026-12-07T00:01:58.123456Z', s: '42' };
    expect(monitorCursor(encodeCursor(c))).toEqual(c);
    expect(monitorCursor(undefined)).toBeNull();
    for (const bad of [{ t: c.t }, { ...c, s: '0' }, { ...c, s: '-1' }, { ...c, s: '1 OR 1=1' }, { ...c, t: '2026-12-07 00:01:58+00' }, { ...c, t: '2026-19-07T00:01:58.123456Z' }, { ...c, tenant: 'x' }, { p: '5' }]) {
      expect(() => monitorCursor(encodeCursor(bad)), JSON.stringify(bad)).toThrow(CountersignError);
    }
  });

  it('keysetPage keeps limit rows and points after the last one only when there are more', () => {
    const rows = [1, 2, 3].map((i) => ({ id: `r${i}`, created_key: `t${i}` }));
    expect(keysetPage(rows, 2, (r) => r.id)).toEqual({ items: ['r1', 'r2'], next: { t: 't2', id: 'r2' } });
    expect(keysetPage(rows, 3, (r) => r.id)).toEqual({ items: ['r1', 'r2', 'r3'], next: null });
  });
});
