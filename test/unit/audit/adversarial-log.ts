// A deterministic synthetic log with one of every kind of damage replay reports (helpers of the replay unit
// tests): a fixed signing key, a fixed clock, and edits an attacker (or a broken transport) could make.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { StoredEvent } from '../../../schemas/events.ts';
import type { SignedReceipt } from '../../../schemas/receipt.ts';
import { syntheticLog } from '../../../services/audit/synthetic-runs.ts';
import { eventHash } from '../../../services/events/hash-chain.ts';
import { buildReceipt } from '../../../services/receipts/build-receipt.ts';
import { Keyring, keyIdFor } from '../../../services/receipts/keyring.ts';
import { signReceipt } from '../../../services/receipts/sign.ts';
import { at, rechain, runStream } from './tamper.ts';

/** An Ed25519 key made from a fixed seed (PKCS#8 DER: the fixed prefix, then the 32-byte seed). */
export function fixedKeyring(seedByte = 7): Keyring {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.alloc(32, seedByte)]);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const x = createPublicKey(privateKey).export({ format: 'jwk' }).x!;
  return new Keyring(privateKey, [{ kid: keyIdFor(Buffer.from(x, 'base64url')), x, status: 'active', created_at: '2024-01-01T00:00:00.000Z' }]);
}

export const ADVERSARIAL_NOW = new Date('2024-05-01T12:00:00Z');
export const ADVERSARIAL_LATER = new Date(ADVERSARIAL_NOW.getTime() + 3_600_000);

/** Re-hashes events in the order given (each after the one before), whatever stream id each now carries. */
function rechainInOrder(events: StoredEvent[]): void {
  let prev: StoredEvent | null = null;
  for (const e of events) {
    e.prev_hash = prev?.hash ?? null;
    e.hash = eventHash(e);
    prev = e;
  }
}

/**
 * The records (JSON text, or null) of a damaged log, in the order a source would hand them over, and anchors
 * (receipts handed out earlier) for the same log.
 */
export function adversarialLog(keyring: Keyring, runs = 48): { records: Array<string | null>; anchors: SignedReceipt[]; log: StoredEvent[] } {
  const log = syntheticLog(keyring, { tenantId: 'acme', runs, tag: 'adversarial', now: ADVERSARIAL_NOW }).map((e) => structuredClone(e));
  const run = (n: number) => runStream(log, n);
  // Receipts handed out before the damage: run 10's loses its ReceiptIssued below, run 1's stays intact.
  const anchors: SignedReceipt[] = [1, 10].map((n) => signReceipt(buildReceipt(log.filter((e) => e.stream_id === run(n) && e.stream_version <= 3))!, keyring));
  // One changed byte: the hash no longer matches.
  (at(log, run(3), 1).data['request'] as { context: { amount: number } }).context.amount += 1;
  // A re-chained change: caught by the receipt's digest.
  (at(log, run(4), 3).data as { reason: string }).reason = 'forged';
  rechain(log, run(4));
  // Another receipt's signature.
  (at(log, run(5), 4).data as { signature: unknown }).signature = structuredClone((at(log, run(6), 4).data as { signature: unknown }).signature);
  rechain(log, run(5));
  // A recorded decision the policy does not give (re-chained, so only re-evaluation and the receipt see it).
  const ev7 = at(log, run(7), 2).data as { evaluation: { decision: string; matched_rule: string | null } };
  ev7.evaluation.decision = 'ALLOW';
  ev7.evaluation.matched_rule = 'forged-rule';
  rechain(log, run(7));
  // A version removed from the middle of a stream.
  const gone = at(log, run(8), 2);
  log.splice(log.indexOf(gone), 1);
  // A final run whose receipt was removed.
  const receipt10 = at(log, run(10), 4);
  log.splice(log.indexOf(receipt10), 1);
  // A policy version that is not in the log.
  (at(log, run(11), 2).data as { policies: Array<{ version: number }> }).policies[0]!.version = 2;
  rechain(log, run(11));
  // A whole run under its pre-migration `-` id, and a run with its first event only under that id.
  const legacyWhole = run(12);
  for (const e of log.filter((x) => x.stream_id === legacyWhole)) e.stream_id = legacyWhole.replace('run/', 'run-');
  rechainInOrder(log.filter((x) => x.stream_id === legacyWhole.replace('run/', 'run-')));
  const legacyFirst = run(13);
  const firstOf13 = log.filter((x) => x.stream_id === legacyFirst).sort((a, b) => a.stream_version - b.stream_version);
  firstOf13[0]!.stream_id = legacyFirst.replace('run/', 'run-');
  rechainInOrder(firstOf13);
  // A run whose events name a decoy stream id in their metadata (listed first in the record's text).
  const decoy = run(14);
  for (const e of log.filter((x) => x.stream_id === decoy)) e.metadata = { ...e.metadata, stream_id: run(15) };
  rechain(log, decoy);
  // The policy's activation, swapped after the fact: named at the activation, and at every run that used it.
  const swapped = structuredClone(log[0]!);

  const text = (e: StoredEvent): string => {
    if (e.stream_id === decoy) return JSON.stringify(Object.assign({ metadata: e.metadata }, e));
    // An escaped `/` in the stream id: the same id once parsed, other bytes in the record.
    if (e.stream_id === run(16) || e.stream_id === run(17)) return JSON.stringify(e).replace(`"stream_id":"run/`, '"stream_id":"run\\/');
    return JSON.stringify(e);
  };
  const records: Array<string | null> = [];
  // An event id taken over by a forged stream before its own stream's copy arrives, and another one after.
  const victimEarly = at(log, run(18), 2);
  const victimLate = at(log, run(19), 2);
  const forged = (victim: StoredEvent, stream: string): string => {
    const f = { ...structuredClone(victim), stream_id: stream, stream_version: 1, prev_hash: null };
    return JSON.stringify({ ...f, hash: eventHash(f) });
  };
  records.push(forged(victimEarly, 'run/dec_forged_early'));
  for (const e of log) {
    records.push(text(e));
    if (e === victimLate) records.push(forged(victimLate, 'run/dec_forged_late'));
  }
  // Transport duplicates, the same event twice with other content, and records that are not events.
  records.push(...log.slice(5, 12).map(text));
  const changed = structuredClone(at(log, run(20), 3));
  (changed.data as { reason: string }).reason = 'replaced';
  records.push(JSON.stringify(changed));
  records.push('not json {', null, JSON.stringify({ hello: 'world' }));
  records.push(JSON.stringify({ ...structuredClone(at(log, run(21), 2)), event_id: 'x/1', stream_id: 'run/x', stream_version: 1, prev_hash: null, type: 'Bogus' }));
  // A second activation of the policy (version 1 again) in a tenant stream of its own kind, listed last.
  swapped.event_id = `${swapped.stream_id}/again`;
  (swapped.data as { document: { rules: Array<{ decision: string }> } }).document.rules[1]!.decision = 'DENY';
  swapped.stream_version = 2;
  swapped.prev_hash = log[0]!.hash;
  swapped.hash = eventHash(swapped);
  records.push(JSON.stringify(swapped));
  return { records, anchors, log };
}
