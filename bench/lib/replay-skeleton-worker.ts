import { parentPort } from 'node:worker_threads';
import type { StoredEvent } from '../../schemas/events.ts';
import { eventHash } from '../../services/events/hash-chain.ts';
import { buildReceipt } from '../../services/receipts/build-receipt.ts';
import { canonicalJson } from '../../services/receipts/canonical.ts';
import { ed25519Verify } from '../../services/receipts/verify.ts';
import type { SkeletonAnswer, SkeletonRequest } from './replay-skeleton.ts';
import { signedStart } from './signed-start.ts';

/**
 * One thread of the replay skeleton (replay-skeleton.ts): only what any replay that checks the floor's
 * cryptography from the log must do besides it. Records arrive as JSON text; each is parsed and its hash
 * checked. At the end, each run's start document is rebuilt from its first two events (with the digests it
 * covers) and its signature verified, and each receipt is rebuilt from the run's events and its signature
 * verified. No validation, deduplication, chain linkage, re-evaluation or fold of any other stream.
 */
/** Public keys (x, base64url) by key id. */
let keys = new Map<string, string>();
let streams = new Map<string, StoredEvent[]>();
let events = 0;
let bad = 0;

function check(key_id: string, value: string, bytes: string): void {
  const x = keys.get(key_id);
  if (!x || !ed25519Verify(x, Buffer.from(bytes, 'utf8'), Buffer.from(value, 'base64url'))) bad += 1;
}

parentPort!.on('message', (m: SkeletonRequest) => {
  if (m.op === 'begin') {
    keys = new Map(m.keys.map((k) => [k.kid, k.x]));
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
    const start = signedStart(run, true);
    if (!start) continue;
    check(start.key_id, start.value, start.bytes);
    starts += 1;
    for (const issued of run) {
      if (issued.type !== 'ReceiptIssued') continue;
      const d = issued.data as { head_version: number; signature: { key_id: string; value: string } };
      const receipt = buildReceipt(run.filter((e) => e.stream_version <= d.head_version));
      if (!receipt) { bad += 1; continue; }
      check(d.signature.key_id, d.signature.value, canonicalJson(receipt));
      receipts += 1;
    }
  }
  streams = new Map();
  parentPort!.postMessage({ events, starts, receipts, bad } satisfies SkeletonAnswer);
});
