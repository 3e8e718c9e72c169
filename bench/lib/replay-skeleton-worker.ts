import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { StoredEvent } from '../../schemas/events.ts';
import { prepareRunStart } from '../../services/decisions/start-attestation.ts';
import { eventHash } from '../../services/events/hash-chain.ts';
import { buildReceipt } from '../../services/receipts/build-receipt.ts';
import { canonicalJson } from '../../services/receipts/canonical.ts';
import type { SkeletonAnswer, SkeletonRequest } from './replay-skeleton.ts';

/**
 * One thread of the replay skeleton (replay-skeleton.ts): only what any replay that checks the floor's
 * cryptography from the log must do besides it. Records arrive as JSON text; each is parsed and its hash
 * checked. At the end, each run's start document is rebuilt from its first two events (with the digests it
 * covers) and its signature verified, and each receipt is rebuilt from the run's events and its signature
 * verified. No validation, deduplication, chain linkage, re-evaluation or fold of any other stream.
 */
let keys = new Map<string, KeyObject>();
let streams = new Map<string, StoredEvent[]>();
let events = 0;
let bad = 0;

function check(key_id: string, value: string, doc: unknown): void {
  const key = keys.get(key_id);
  if (!key || !verify(null, Buffer.from(canonicalJson(doc), 'utf8'), key, Buffer.from(value, 'base64url'))) bad += 1;
}

parentPort!.on('message', (m: SkeletonRequest) => {
  if (m.op === 'begin') {
    keys = new Map(m.keys.map((k) => [k.kid, createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k.x }, format: 'jwk' })]));
    streams = new Map();
    events = 0;
    bad = 0;
    return;
  }
  if (m.op === 'records') {
    for (const value of m.values) {
      const e = JSON.parse(value) as StoredEvent;
      events += 1;
      if (eventHash(e) !== e.hash) bad += 1;
      const s = streams.get(e.stream_id);
      if (s) s.push(e);
      else streams.set(e.stream_id, [e]);
    }
    return;
  }
  let starts = 0;
  let receipts = 0;
  for (const run of streams.values()) {
    const requested = run.find((e) => e.type === 'DecisionRequested');
    const evaluated = run.find((e) => e.type === 'PolicyEvaluated');
    if (!requested || !evaluated) continue;
    const p = prepareRunStart(requested.data, evaluated.data, undefined, { validated: true });
    if (!p.ok) { bad += 1; continue; }
    const sig = p.signature as { key_id: string; value: string };
    check(sig.key_id, sig.value, p.doc);
    starts += 1;
    for (const issued of run) {
      if (issued.type !== 'ReceiptIssued') continue;
      const d = issued.data as { head_version: number; signature: { key_id: string; value: string } };
      const receipt = buildReceipt(run.filter((e) => e.stream_version <= d.head_version));
      if (!receipt) { bad += 1; continue; }
      check(d.signature.key_id, d.signature.value, receipt);
      receipts += 1;
    }
  }
  streams = new Map();
  parentPort!.postMessage({ events, starts, receipts, bad } satisfies SkeletonAnswer);
});
