import { describe, expect, it } from 'vitest';
import { sameEvent } from '../../../services/decisions/same-event.ts';

describe('sameEvent: what an event says, as the log keeps it', () => {
  const e = (data: unknown, type = 'NotificationSent') => ({ type, data });

  it('key order and undefined values do not count (jsonb keeps neither)', () => {
    expect(sameEvent(e({ a: 1, b: { c: [1, 2], d: 'x' } }), e({ b: { d: 'x', c: [1, 2] }, a: 1 }))).toBe(true);
    expect(sameEvent(e({ a: 1, comment: undefined }), e({ a: 1 }))).toBe(true);
  });

  it('any other difference does: type, a value, an array element or its order, a key present on one side', () => {
    expect(sameEvent(e({ a: 1 }), e({ a: 1 }, 'NotificationFailed'))).toBe(false);
    expect(sameEvent(e({ a: 1 }), e({ a: 2 }))).toBe(false);
    expect(sameEvent(e({ a: '1' }), e({ a: 1 }))).toBe(false);
    expect(sameEvent(e({ a: [1, 2] }), e({ a: [2, 1] }))).toBe(false);
    expect(sameEvent(e({ a: [1] }), e({ a: [1, 1] }))).toBe(false);
    expect(sameEvent(e({ a: 1, b: null }), e({ a: 1 }))).toBe(false);
    expect(sameEvent(e({ a: {} }), e({ a: [] }))).toBe(false);
    expect(sameEvent(e({ at: '2026-12-07T06:00:00.000Z' }), e({ at: '2026-12-07T06:00:00.001Z' }))).toBe(false);
  });
});
