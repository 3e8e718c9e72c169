import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { StoredEvent } from '../../schemas/events.ts';
import { eventHash } from '../../services/events/hash-chain.ts';
import type { FloorShare } from './crypto-floor.ts';

/**
 * One thread of the cryptographic floor: its share of the events (parsed before the clock starts) and of the
 * signatures (bytes, key objects and signature buffers made before the clock starts). On `go`: SHA-256 over
 * each event's canonical form, then one Ed25519 verification per signature; answers how many failed (none may).
 */
let events: StoredEvent[] = [];
let sigs: Array<{ bytes: Buffer; key: KeyObject; sig: Buffer }> = [];
const keys = new Map<string, KeyObject>();

parentPort!.on('message', (m: { share: FloorShare } | { go: true }) => {
  if ('share' in m) {
    events = m.share.events.map((s) => JSON.parse(s) as StoredEvent);
    sigs = m.share.sigs.map((s) => {
      let key = keys.get(s.x);
      if (!key) keys.set(s.x, (key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: s.x }, format: 'jwk' })));
      return { bytes: Buffer.from(s.bytes, 'utf8'), key, sig: Buffer.from(s.sig, 'base64url') };
    });
    parentPort!.postMessage({ ready: true });
    return;
  }
  let bad = 0;
  for (const e of events) if (eventHash(e) !== e.hash) bad += 1;
  for (const s of sigs) if (!verify(null, s.bytes, s.key, s.sig)) bad += 1;
  parentPort!.postMessage({ bad });
});
