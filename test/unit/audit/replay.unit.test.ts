import { describe, expect, it } from 'vitest';
import { at, rechain, runStream } from './tamper.ts';
import type { StoredEvent } from '../../../schemas/events.ts';
import { Replay, type ReplayOptions } from '../../../services/audit/replay.ts';
import { syntheticLog } from '../../../services/audit/synthetic-runs.ts';
import { upcasterKey } from '../../../services/events/upcast.ts';
import { createInMemoryKeyring } from '../../../services/receipts/keyring.ts';
import { signReceipt } from '../../../services/receipts/sign.ts';
import { buildReceipt } from '../../../services/receipts/build-receipt.ts';
import { sha256Digest } from '../../../services/receipts/canonical.ts';

const keyring = createInMemoryKeyring(new Date('2024-01-01T00:00:00Z'));
const NOW = new Date('2024-05-01T12:00:00Z');
const LATER = new Date(NOW.getTime() + 3_600_000);
const base = () => syntheticLog(keyring, { tenantId: 'acme', runs: 12, tag: 'unit', now: NOW }).map((e) => structuredClone(e));

function replay(log: StoredEvent[], opts: Partial<ReplayOptions> = {}, extra: Array<string | null> = []) {
  const r = new Replay({ keys: keyring.publicKeys(), now: LATER, ...opts });
  for (const e of log) r.add({ value: JSON.stringify(e), where: `test:${e.position}` });
  for (const [i, v] of extra.entries()) r.add({ value: v, where: `extra:${i}` });
  return r.finish();
}


describe('Replay over a synthetic log', () => {
  it('finds nothing wrong with an untouched log, rebuilds every receipt and re-derives every decision', () => {
    const log = base();
    const r = replay(log);
    expect(r.divergences).toEqual([]);
    expect(r.runs).toBe(12);
    expect(r.receipts).toHaveLength(11); // run 9 is pending approval
    expect(r.re_evaluated).toBe(12);
    expect(Object.values(r.policies).flat().map((p) => p.version)).toEqual([1]);
  });

  it('counts transport duplicates without complaint, in any order', () => {
    const log = base();
    const r = replay([...log].reverse().concat(log.slice(0, 5)));
    expect(r.divergences).toEqual([]);
    expect(r.duplicates).toBe(5);
  });

  it('one changed byte is named at its position', () => {
    const log = base();
    const s = runStream(log, 3);
    const e = at(log, s, 1);
    (e.data['request'] as { context: { amount: number } }).context.amount += 1;
    expect(replay(log).divergences).toEqual([{ stream_id: s, position: e.position, problem: expect.stringMatching(/hash does not match/) }]);
  });

  it('a re-chained change is caught by the receipt signature digest', () => {
    const log = base();
    const s = runStream(log, 4);
    (at(log, s, 3).data as { reason: string }).reason = 'forged';
    rechain(log, s);
    const d = replay(log).divergences;
    expect(d).toEqual([{ stream_id: s, position: at(log, s, 4).position, problem: 'rebuilt receipt differs from the one that was signed' }]);
  });

  it('a receipt re-signed by an unknown key is refused', () => {
    const log = base();
    const s = runStream(log, 2);
    const stranger = createInMemoryKeyring();
    const issued = at(log, s, 4);
    const signed = signReceipt(buildReceipt(log.filter((e) => e.stream_id === s && e.stream_version <= 3))!, stranger);
    (issued.data as { signature: unknown }).signature = signed.signature;
    rechain(log, s);
    expect(replay(log).divergences).toEqual([{ stream_id: s, position: issued.position, problem: expect.stringMatching(/^receipt signature: unknown_key/) }]);
  });

  it('a truncated tail: a final run without its receipt, once the grace has passed', () => {
    const log = base();
    const s = runStream(log, 5);
    const cut = log.filter((e) => !(e.stream_id === s && e.stream_version === 4));
    expect(replay(cut, { now: NOW }).divergences).toEqual([]); // young: in flight
    expect(replay(cut, { now: NOW }).unsigned_runs).toContain(s);
    expect(replay(cut).divergences).toEqual([{ stream_id: s, position: at(log, s, 1).position, problem: expect.stringMatching(/final but has no receipt/) }]);
  });

  it('a tail cut inside an atomic append is named at the last surviving event', () => {
    const log = base();
    const s = runStream(log, 6);
    const cut = log.filter((e) => !(e.stream_id === s && e.stream_version >= 3));
    expect(replay(cut, { now: NOW }).divergences).toEqual([{ stream_id: s, position: at(log, s, 2).position, problem: expect.stringMatching(/inside an atomic append \(event 2 of 3\)/) }]);
  });

  it('an event forged after the receipt is covered by no signature', () => {
    const log = base();
    const s = runStream(log, 7);
    const last = at(log, s, 4);
    const forged: StoredEvent = { ...structuredClone(at(log, s, 3)), position: '999999', stream_version: 5, event_id: `${last.event_id}-forged`, metadata: { batch: { index: 1, size: 1 } } };
    (forged.data as { decision: string }).decision = 'DENY';
    log.push(forged);
    rechain(log, s);
    expect(replay(log).divergences).toEqual([{ stream_id: s, position: '999999', problem: expect.stringMatching(/after the receipt at version 4 are covered by no signature/) }]);
  });

  it('a swapped policy snapshot is named at the activation, and every run that used it too', () => {
    const log = base();
    const p = log[0]!;
    const d = p.data as { document: { rules: Array<{ decision: string }> } };
    d.document.rules[1]!.decision = 'DENY';
    rechain(log, p.stream_id);
    const divergences = replay(log).divergences;
    expect(divergences[0]).toEqual({ stream_id: p.stream_id, position: p.position, problem: expect.stringMatching(/does not match its document/) });
  });

  it('an anchored receipt whose run was deleted whole is reported', () => {
    const log = base();
    const s = runStream(log, 1);
    const anchors = replay(log).receipts.filter((r) => r.receipt.stream_id === s);
    const r = replay(log.filter((e) => e.stream_id !== s), { anchors });
    expect(r.divergences).toEqual([{ stream_id: s, position: null, problem: expect.stringMatching(/not in the log/) }]);
  });

  it('reports malformed records and never throws', () => {
    const log = base();
    const s = runStream(log, 0);
    const bad = structuredClone(at(log, s, 2));
    const r = replay(log, {}, [
      'not json {',
      null,
      JSON.stringify({ hello: 'world' }),
      JSON.stringify({ ...bad, event_id: 'x/1', stream_id: 'run/x', stream_version: 1, prev_hash: null, type: 'Bogus' }),
      JSON.stringify({ ...bad, event_id: 'y/1', stream_id: 'run/y', stream_version: 1, prev_hash: null, data: { evaluation: 7 } }),
    ]);
    const problems = r.divergences.map((d) => `${d.position} ${d.problem}`);
    expect(problems[0]).toBe('extra:0 record is not JSON');
    expect(problems[1]).toBe('extra:1 record is not JSON');
    expect(problems[2]).toMatch(/^extra:2 record is not an event/);
    expect(r.divergences).toHaveLength(5);
  });

  it('a known type with data that fails its schema is reported, not thrown', () => {
    const log = base();
    const s = runStream(log, 8);
    const e = at(log, s, 2);
    e.data = { evaluation: 'nope' };
    rechain(log, s);
    expect(replay(log).divergences).toEqual([{ stream_id: s, position: e.position, problem: expect.stringMatching(/^PolicyEvaluated data invalid at evaluation/) }]);
  });

  it('upcasts old schema versions after checking the chain on the stored form', () => {
    const log = base();
    const s = runStream(log, 0);
    // A fabricated history: DecisionFinalized v1 said `verdict`; the (fabricated) current v2 says `decision`.
    for (const f of log.filter((x) => x.type === 'DecisionFinalized')) {
      const current = f.data;
      const { decision, ...rest } = f.data as { decision: string };
      f.data = { ...rest, verdict: decision };
      rechain(log, f.stream_id);
      // As the worker of that time would have signed it: over the folded view, with the stored hashes.
      const issued = log.find((x) => x.stream_id === f.stream_id && x.type === 'ReceiptIssued');
      if (!issued) continue;
      const body = log.filter((x) => x.stream_id === f.stream_id && x.stream_version < issued.stream_version).sort((a, b) => a.stream_version - b.stream_version);
      const signed = signReceipt(buildReceipt(body.map((x) => (x === f ? { ...x, data: current } : x)))!, keyring);
      issued.data = { ...issued.data, receipt_digest: sha256Digest(signed.receipt), signature: signed.signature };
      rechain(log, f.stream_id);
    }
    const e = at(log, s, 3);
    const same = (d: Record<string, unknown>) => d;
    const upcasters = new Map([
      ...['DecisionRequested', 'PolicyEvaluated', 'ReceiptIssued', 'PolicyActivated'].map((t) => [upcasterKey(t, 1), same] as const),
      [upcasterKey('DecisionFinalized', 1), (d: Record<string, unknown>) => { const { verdict, ...r } = d; return { ...r, decision: verdict }; }],
    ]);
    // The receipt was signed over the folded view, which is the same once upcast: nothing diverges.
    expect(replay(log, { upcasters, schemaVersion: 2 }).divergences).toEqual([]);
    // Without the upcaster, the old shape is reported at its position.
    expect(replay(log).divergences).toContainEqual({ stream_id: s, position: e.position, problem: expect.stringMatching(/^DecisionFinalized data invalid/) });
  });
});
