import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Replay, shardOfRecord, type ReplayOptions, type ReplayReport } from '../../../services/audit/replay.ts';
import { shardOfStream } from '../../../services/audit/replay-shard.ts';
import { currentStreamId } from '../../../services/events/stream-ids.ts';
import { adversarialLog, fixedKeyring, ADVERSARIAL_LATER, ADVERSARIAL_NOW } from './adversarial-log.ts';

const keyring = fixedKeyring();
const { records, anchors } = adversarialLog(keyring);

function replay(parallel: ReplayOptions['parallel'], opts: Partial<ReplayOptions> = {}): ReplayReport {
  const r = new Replay({ keys: keyring.publicKeys(), now: ADVERSARIAL_LATER, parallel, anchors, ...opts });
  records.forEach((value, i) => r.add({ value, where: `test:${i}` }));
  return r.finish();
}

const digest = (report: ReplayReport) => createHash('sha256').update(JSON.stringify(report)).digest('hex');
const parsed = records.flatMap((value, index) => {
  try {
    const j = JSON.parse(value ?? '') as { stream_id?: unknown; tenant_id?: unknown; event_id?: unknown };
    return typeof j.stream_id === 'string' && typeof j.tenant_id === 'string' ? [{ value: value!, index, stream: j.stream_id, current: currentStreamId(j.stream_id, j.tenant_id), eventId: String(j.event_id) }] : [];
  } catch {
    return [];
  }
});

/**
 * The report of the damaged log (tampered bytes, broken chains, another receipt's signature, a decision the
 * policy does not give, a missing policy version, a removed receipt, pre-migration ids, decoy and escaped
 * stream ids, an event id taken over by another stream before and after its own copy, duplicates, records
 * that are not events, a swapped policy activation, anchors), as the single-threaded replay gave it before the
 * work was split over shards: the SHA-256 of its JSON. (Taken again when compiled approvals began to mark
 * defaulted timeouts: only the fixture's hashes and signatures moved, every divergence stayed as it was.)
 */
const BEFORE_SHARDING = 'c927a9b1d14d0bac46949bce0c0ffc53090d618a794e07b26e2d006678c30581';

describe('Replay split over shards on worker threads', () => {
  const inline = replay(false);

  it('reports every kind of damage, exactly as the single-threaded replay did', () => {
    expect(inline.divergences.length).toBeGreaterThan(20);
    expect(inline.duplicates).toBeGreaterThan(0);
    expect(digest(inline)).toBe(BEFORE_SHARDING);
  });

  it('gives the same report, byte for byte, with any number of shards, started at once or after a while', () => {
    const configurations = [{ workers: 1, after: 0 }, ...[2, 3, 4].flatMap((workers) => [0, 150].map((after) => ({ workers, after })))];
    let differed = 0;
    for (const parallel of configurations) {
      const sharded = replay(parallel);
      if (digest(sharded) !== BEFORE_SHARDING) differed += 1;
      expect(sharded).toEqual(inline);
    }
    console.log(`attack sharded-replay-differs: ${configurations.length} attempts, ${differed} got through`);
    expect(differed).toBe(0);
  }, 300_000);

  it('the log takes the paths where shards must cooperate: records handed over, one event id in two shards', () => {
    // Records whose text names another shard's stream than the one they belong to (escaped, decoy ids).
    const misrouted = (shards: number) => parsed.filter((p) => shardOfRecord(p.value, shards) !== shardOfStream(p.stream, shards)).length;
    expect(misrouted(3) + misrouted(4)).toBeGreaterThan(0);
    // An event id in streams of two different shards.
    const split = (shards: number) => {
      const byId = new Map<string, Set<number>>();
      for (const p of parsed) (byId.get(p.eventId) ?? byId.set(p.eventId, new Set()).get(p.eventId)!).add(shardOfStream(p.current, shards));
      return [...byId.values()].filter((s) => s.size > 1).length;
    };
    expect(split(2) + split(3) + split(4)).toBeGreaterThan(0);
  });

  it('one tenant, and runs since a time, the same on threads', () => {
    for (const opts of [{ tenantId: 'acme' }, { tenantId: 'other' }, { since: new Date(ADVERSARIAL_NOW.getTime() + 1) }, { since: ADVERSARIAL_NOW }]) {
      expect(replay({ workers: 3, after: 0 }, opts)).toEqual(replay(false, opts));
    }
  }, 300_000);
});
