import { describe, expect, it } from 'vitest';
import { EVENT_DATA, StoredEvent, type EventType } from '../../../schemas/events.ts';
import { plainStoredEvent } from '../../../services/audit/replay.ts';
import { validatedData } from '../../../services/audit/replay-shard.ts';
import { syntheticLog } from '../../../services/audit/synthetic-runs.ts';
import { createInMemoryKeyring } from '../../../services/receipts/keyring.ts';

const keyring = createInMemoryKeyring(new Date('2024-01-01T00:00:00Z'));
const log = syntheticLog(keyring, { tenantId: 'acme', runs: 12, tag: 'fast-paths', now: new Date('2024-05-01T12:00:00Z') });
const parsed = (e: unknown) => JSON.parse(JSON.stringify(e)) as Record<string, unknown>;

/** Whenever the fast path answers, zod accepts the same record and gives an equal event; otherwise zod decides. */
const agrees = (json: unknown) => {
  const fast = plainStoredEvent(json);
  const zod = StoredEvent.safeParse(json);
  if (fast !== null) {
    expect(zod.success).toBe(true);
    expect(fast).toStrictEqual(zod.data);
    expect(Object.keys(fast)).toEqual(Object.keys(zod.data!));
  }
  return fast;
};

describe("the replay's fast path for stored events gives zod's answer", () => {
  it('takes every event of a log, equal to StoredEvent.parse', () => {
    for (const e of log) expect(agrees(parsed(e))).not.toBeNull();
  });

  it('hands every doubtful record to zod', () => {
    const e = log[1]!;
    const variants: Array<(o: Record<string, unknown>) => void> = [
      (o) => { delete o['hash']; },
      (o) => { o['extra'] = 1; },
      (o) => { o['hash'] = 'sha256:XYZ'; },
      (o) => { o['prev_hash'] = 'sha256:' + 'a'.repeat(63); },
      (o) => { o['prev_hash'] = 7; },
      (o) => { o['recorded_at'] = '2024-02-30T00:00:00Z'; },
      (o) => { o['recorded_at'] = '2024-02-03 00:00:00'; },
      (o) => { o['stream_version'] = 0; },
      (o) => { o['stream_version'] = 1.5; },
      (o) => { o['stream_version'] = 2 ** 53; },
      (o) => { o['schema_version'] = '1'; },
      (o) => { o['position'] = '-1'; },
      (o) => { o['position'] = 12; },
      (o) => { o['stream_id'] = ''; },
      (o) => { o['stream_id'] = 'x'.repeat(301); },
      (o) => { o['event_id'] = 'x'.repeat(301); },
      (o) => { o['tenant_id'] = null; },
      (o) => { o['type'] = 3; },
      (o) => { o['data'] = []; },
      (o) => { o['data'] = null; },
      (o) => { o['metadata'] = 'm'; },
    ];
    for (const change of variants) {
      const o = parsed(e);
      change(o);
      expect(agrees(o)).toBeNull();
    }
    expect(agrees(null)).toBeNull();
    expect(agrees([parsed(e)])).toBeNull();
  });

  it('an own "__proto__" key in data or metadata goes to zod (whose records drop it)', () => {
    for (const field of ['data', 'metadata']) {
      const text = JSON.stringify(parsed(log[1]!)).replace(`"${field}":{`, `"${field}":{"__proto__":{"polluted":true},`);
      const json = JSON.parse(text) as Record<string, unknown>;
      expect(Object.hasOwn(json[field] as object, '__proto__')).toBe(true);
      expect(agrees(json)).toBeNull();
    }
  });

  it('accepts the edges the schema accepts', () => {
    const o = parsed(log[0]!);
    Object.assign(o, { stream_id: 'x'.repeat(300), event_id: 'e', recorded_at: '2024-02-29T23:59:59.123456+05:30', prev_hash: null, position: '0' });
    expect(agrees(o)).not.toBeNull();
  });
});

describe("the replay's validated event data is zod's answer", () => {
  /** The data the replay checks with: equal to zod's output key for key (order too), and zod's verdict. */
  const validated = (type: EventType, data: Record<string, unknown>) => {
    const mine = validatedData(type, data);
    const zod = EVENT_DATA[type].safeParse(data);
    expect(mine.success).toBe(zod.success);
    if (mine.success && zod.success) {
      expect(mine.data).toStrictEqual(zod.data);
      expect(JSON.stringify(mine.data)).toBe(JSON.stringify(zod.data));
    }
    return mine;
  };

  it('is the stored data itself when zod changes nothing in it', () => {
    for (const e of log) {
      const data = parsed(e)['data'] as Record<string, unknown>;
      const v = validated(e.type as EventType, data);
      if (e.type !== 'PolicyActivated') expect(v.success && v.data === data).toBe(true);
    }
  });

  it("is zod's copy when zod fills in a default, drops or reorders a key", () => {
    const requested = log.find((e) => e.type === 'DecisionRequested')!;
    const evaluated = log.find((e) => e.type === 'PolicyEvaluated')!;
    const noDefaults = parsed(requested)['data'] as { request: Record<string, unknown> };
    delete noDefaults.request['context'];
    delete noDefaults.request['policy_rules'];
    const reordered = parsed(evaluated)['data'] as Record<string, unknown>;
    const { evaluation, ...rest } = reordered;
    for (const [type, data] of [['DecisionRequested', noDefaults], ['PolicyEvaluated', { ...rest, evaluation }]] as const) {
      const v = validated(type, data);
      expect(v.success && v.data !== data).toBe(true);
    }
    const filled = validated('DecisionRequested', noDefaults);
    expect(filled.success && (filled.data['request'] as Record<string, unknown>)['context']).toEqual({});
  });

  it('refuses what zod refuses, with its error', () => {
    const data = parsed(log[1]!)['data'] as Record<string, unknown>;
    const v = validated('DecisionRequested', { ...data, extra: 1 });
    expect(v.success).toBe(false);
  });
});
