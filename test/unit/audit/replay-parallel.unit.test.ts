import { describe, expect, it } from 'vitest';
import { at, rechain, runStream } from './tamper.ts';
import type { StoredEvent } from '../../../schemas/events.ts';
import { Replay, type ReplayOptions } from '../../../services/audit/replay.ts';
import { endIdleShardThreads } from '../../../services/audit/replay-threads.ts';
import { syntheticLog } from '../../../services/audit/synthetic-runs.ts';
import { createInMemoryKeyring } from '../../../services/receipts/keyring.ts';
import { signReceipt } from '../../../services/receipts/sign.ts';
import { buildReceipt } from '../../../services/receipts/build-receipt.ts';

const keyring = createInMemoryKeyring(new Date('2024-01-01T00:00:00Z'));
const NOW = new Date('2024-05-01T12:00:00Z');
const LATER = new Date(NOW.getTime() + 3_600_000);
const base = () => syntheticLog(keyring, { tenantId: 'acme', runs: 30, tag: 'parallel', now: NOW }).map((e) => structuredClone(e));

function replay(log: StoredEvent[], parallel: ReplayOptions['parallel']) {
  const r = new Replay({ keys: keyring.publicKeys(), now: LATER, parallel });
  for (const e of log) r.add({ value: JSON.stringify(e), where: `test:${e.position}` });
  r.add({ value: 'not json', where: 'extra:0' });
  return r.finish();
}

/** The worker threads (services/audit/replay-threads.ts) only move work: the report must not change. */
const bothWays = (log: StoredEvent[]) => {
  const inline = replay(log, false);
  const pooled = replay(log, { workers: 2, after: 0 });
  expect(pooled).toEqual(inline);
  return inline;
};


// Each replay starts its threads (each loading the sources): seconds on a loaded machine.
describe('Replay on worker threads gives the inline report', { timeout: 60_000 }, () => {
  it('untouched log', () => {
    const r = bothWays(base());
    expect(r.divergences).toEqual([{ stream_id: null, position: 'extra:0', problem: 'record is not JSON' }]);
    expect(r.receipts.length).toBeGreaterThan(20);
  });

  it('threads kept for the next replay can be ended, and the next replay starts its own', async () => {
    const first = bothWays(base());
    await endIdleShardThreads();
    await endIdleShardThreads(); // nothing left to end
    expect(replay(base(), { workers: 2, after: 0 })).toEqual(first);
  });

  it('one changed byte (hash check on a worker)', () => {
    const log = base();
    const e = at(log, runStream(log, 5), 2);
    (e.data as { default_decision: string }).default_decision = 'ALLOW';
    expect(bothWays(log).divergences).toContainEqual({ stream_id: e.stream_id, position: e.position, problem: expect.stringMatching(/hash does not match/) });
  });

  it('a signature from another receipt (Ed25519 check on a worker)', () => {
    const log = base();
    const a = runStream(log, 1);
    const b = runStream(log, 2);
    const issuedA = at(log, a, 4);
    (issuedA.data as { signature: unknown }).signature = (at(log, b, 4).data as { signature: unknown }).signature;
    rechain(log, a); // only the signature is wrong
    expect(bothWays(log).divergences).toContainEqual({ stream_id: a, position: issuedA.position, problem: expect.stringMatching(/^receipt signature: bad_signature/) });
  });

  it('a forged "__proto__" key in an event\'s data (dropped by validation on the main thread)', () => {
    const log = base();
    const e = at(log, runStream(log, 6), 2);
    const r = (values: string[], parallel: ReplayOptions['parallel']) => {
      const replay = new Replay({ keys: keyring.publicKeys(), now: LATER, parallel });
      values.forEach((v, i) => replay.add({ value: v, where: `test:${i}` }));
      return replay.finish();
    };
    const values = log.map((x) => {
      const json = JSON.stringify(x);
      // JSON.parse keeps the escaped key as an own property; a hash over it would differ from the recorded one.
      return x === e ? json.replace('"data":{', '"data":{"\\u005f_proto__":{"x":1},') : json;
    });
    const inline = r(values, false);
    expect(r(values, { workers: 2, after: 0 })).toEqual(inline);
    // Validation drops the key, so the main thread holds the event that was hashed: no divergence, both ways.
    expect(inline.divergences.filter((d) => d.stream_id === e.stream_id)).toEqual([]);
  });

  it('a receipt signed by a key outside the set', () => {
    const log = base();
    const s = runStream(log, 3);
    const issued = at(log, s, 4);
    (issued.data as { signature: unknown }).signature = signReceipt(buildReceipt(log.filter((e) => e.stream_id === s && e.stream_version <= 3))!, createInMemoryKeyring()).signature;
    rechain(log, s);
    expect(bothWays(log).divergences).toContainEqual({ stream_id: s, position: issued.position, problem: expect.stringMatching(/^receipt signature: unknown_key/) });
  });
});
