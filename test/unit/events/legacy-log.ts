// A log as written before stream ids were composed with `/`, for the tests of migration 0014 and its readers.
import type { EventData, StoredEvent } from '../../../schemas/events.ts';
import { eventHash } from '../../../services/events/hash-chain.ts';
import { legacyStreamId } from '../../../services/events/stream-ids.ts';
import { buildReceipt } from '../../../services/receipts/build-receipt.ts';
import { sha256Digest } from '../../../services/receipts/canonical.ts';
import type { Keyring } from '../../../services/receipts/keyring.ts';
import { signReceipt } from '../../../services/receipts/sign.ts';

/**
 * The same log as it was written before ids were composed with `/`: every stream under its `-` id, hashes
 * chained over that id, and each receipt (which names its stream) rebuilt and signed again over it.
 */
export function writtenBeforeSlashIds(log: readonly StoredEvent[], keyring: Keyring): StoredEvent[] {
  const old = log.map((e) => structuredClone(e));
  const streams = new Set(old.map((e) => e.stream_id));
  for (const id of streams) {
    const legacy = legacyStreamId(id)!;
    const events = old.filter((e) => e.stream_id === id).sort((a, b) => a.stream_version - b.stream_version);
    for (const e of events) e.stream_id = legacy;
    let prev: StoredEvent | null = null;
    for (const e of events) {
      e.prev_hash = prev?.hash ?? null;
      if (e.type === 'ReceiptIssued') {
        const d = e.data as EventData<'ReceiptIssued'>;
        const signed = signReceipt(buildReceipt(events.filter((x) => x.stream_version <= d.head_version))!, keyring);
        e.data = { ...d, receipt_digest: sha256Digest(signed.receipt), signature: signed.signature };
      }
      e.hash = eventHash(e);
      prev = e;
    }
  }
  return old;
}
