import { describe, expect, it } from 'vitest';
import { parseRoundEvent, STREAM_PATH, STREAM_RETRY_MS, watchApprovalStream, type RoundEvent, type StreamMode, type StreamSource } from '../../../services/console/src/approval-stream.ts';
import { parseEditedArgs } from '../../../services/console/src/edited-args.ts';

/** An EventSource stand-in the test drives: open, events, errors with the browser's readyState values. */
class FakeSource implements StreamSource {
  readyState = 0;
  closed = false;
  onopen: ((ev: unknown) => unknown) | null = null;
  onerror: ((ev: unknown) => unknown) | null = null;
  private listeners: Array<(ev: { data: string }) => void> = [];
  addEventListener(_type: 'round', l: (ev: { data: string }) => void) { this.listeners.push(l); }
  close() { this.closed = true; this.readyState = 2; }
  open() { this.readyState = 1; this.onopen?.({}); }
  round(data: string) { for (const l of this.listeners) l({ data }); }
  /** A connection lost after it was open: the browser reconnects by itself. */
  drop() { this.readyState = 0; this.onerror?.({}); }
  /** A final failure (404, 401, another content type): the browser gives up. */
  refuse() { this.readyState = 2; this.onerror?.({}); }
}

function harness() {
  const sources: FakeSource[] = [];
  const timers: Array<{ fn: () => void; ms: number; cleared: boolean }> = [];
  const modes: StreamMode[] = [];
  const changes: Array<RoundEvent | null> = [];
  const stop = watchApprovalStream({
    open: (path) => { expect(path).toBe(STREAM_PATH); const s = new FakeSource(); sources.push(s); return s; },
    setTimer: (fn, ms) => { const t = { fn, ms, cleared: false }; timers.push(t); return t; },
    clearTimer: (t) => { (t as { cleared: boolean }).cleared = true; },
  }, { onChange: (e) => changes.push(e), onMode: (m) => modes.push(m) });
  return { sources, timers, modes, changes, stop };
}

describe("the inbox's approvals stream", () => {
  it('polls until the stream opens, then is live and refreshes once for what it may have missed and at every round event', () => {
    const h = harness();
    expect(h.modes).toEqual(['polling']);
    h.sources[0]!.open();
    expect(h.modes).toEqual(['polling', 'live']);
    expect(h.changes).toEqual([null]);
    h.sources[0]!.round(JSON.stringify({ id: 'dec_1', kind: 'decision', status: 'closed', reason: 'approved' }));
    expect(h.changes[1]).toEqual({ id: 'dec_1', kind: 'decision', status: 'closed', reason: 'approved' });
    // An event the page cannot read still refreshes the list (which is read again in full anyway).
    h.sources[0]!.round('not json');
    h.sources[0]!.round('[1]');
    expect(h.changes.slice(2)).toEqual([null, null]);
    h.stop();
    expect(h.sources[0]!.closed).toBe(true);
  });

  it('falls back to polling when the API has no stream (404) and tries it again later', () => {
    const h = harness();
    h.sources[0]!.refuse();
    expect(h.modes).toEqual(['polling']);
    expect(h.sources[0]!.closed).toBe(true);
    expect(h.timers).toHaveLength(1);
    expect(h.timers[0]!.ms).toBe(STREAM_RETRY_MS);
    // A second error of the same dead source schedules nothing more.
    h.sources[0]!.refuse();
    expect(h.timers).toHaveLength(1);
    h.timers[0]!.fn();
    expect(h.sources).toHaveLength(2);
    h.sources[1]!.open();
    expect(h.modes).toEqual(['polling', 'live']);
    expect(h.changes).toEqual([null]);
  });

  it('polls while a dropped stream reconnects, and is live again when it has', () => {
    const h = harness();
    h.sources[0]!.open();
    h.sources[0]!.drop();
    expect(h.modes).toEqual(['polling', 'live', 'polling']);
    expect(h.timers).toHaveLength(0);
    expect(h.sources[0]!.closed).toBe(false);
    h.sources[0]!.open();
    expect(h.modes).toEqual(['polling', 'live', 'polling', 'live']);
    expect(h.changes).toEqual([null, null]);
  });

  it('polls when EventSource cannot even be made, and stops every timer and source when the page leaves', () => {
    const timers: Array<{ cleared: boolean; fn: () => void }> = [];
    const modes: StreamMode[] = [];
    let opened = 0;
    const stop = watchApprovalStream({
      open: () => { opened++; throw new Error('no EventSource'); },
      setTimer: (fn) => { const t = { fn, cleared: false }; timers.push(t); return t; },
      clearTimer: (t) => { (t as { cleared: boolean }).cleared = true; },
    }, { onChange: () => undefined, onMode: (m) => modes.push(m) });
    expect(modes).toEqual(['polling']);
    expect(opened).toBe(1);
    stop();
    expect(timers[0]!.cleared).toBe(true);
    timers[0]!.fn();
    expect(opened).toBe(1);
  });

  it('reads round events and nothing else as one', () => {
    expect(parseRoundEvent('{"id":"dec_1","kind":"override","status":"open"}')).toEqual({ id: 'dec_1', kind: 'override', status: 'open' });
    expect(parseRoundEvent('{"id":1,"kind":"decision","status":"open"}')).toBeNull();
    expect(parseRoundEvent('null')).toBeNull();
    expect(parseRoundEvent('{')).toBeNull();
  });
});

describe('approve with edit: the arguments as typed', () => {
  it('takes a JSON object and names what else is wrong', () => {
    expect(parseEditedArgs('{ "amount": 100, "order": "A-17" }')).toEqual({ ok: true, args: { amount: 100, order: 'A-17' } });
    const bad = parseEditedArgs('{ "amount": 100,');
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.message).toMatch(/^not JSON: /);
    for (const t of ['[1, 2]', 'null', '42', '"text"']) expect(parseEditedArgs(t)).toEqual({ ok: false, message: 'the arguments must be a JSON object ({ "name": value, … })' });
  });
});
