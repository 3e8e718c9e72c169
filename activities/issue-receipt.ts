import { withTenant, type Db } from '../services/events/db.ts';
import { appendReconciled } from '../services/events/append-reconciled.ts';
import { readStream } from '../services/events/read-events.ts';
import { runEventId, runStreamId } from '../services/decisions/ids.ts';
import { buildReceipt, type ReceiptSource } from '../services/receipts/build-receipt.ts';
import { sha256Digest } from '../services/receipts/canonical.ts';
import type { Keyring } from '../services/receipts/keyring.ts';
import { signReceipt } from '../services/receipts/sign.ts';
import type { NewEvent } from '../schemas/events.ts';
import type { AdoptedEvent, IssueReceiptInput, IssueReceiptResult } from './types.ts';

/**
 * Signs the receipt rebuilt from the run's events and records ReceiptIssued. Idempotent: Ed25519 signatures
 * are deterministic and the event id is derived from the stream version, so a retry appends nothing new.
 */
export function makeIssueReceipt(db: Db, keyring: () => Promise<Keyring>) {
  return async function issueReceipt(input: IssueReceiptInput): Promise<IssueReceiptResult> {
    const events = (await withTenant(db, input.tenantId, (c) => readStream(c, runStreamId(input.decisionId)))).filter((e) => e.stream_version <= input.headVersion);
    // A receipt signs the run as of headVersion: if the stream holds other events after it (an earlier attempt
    // of the workflow task wrote them), none is issued; the workflow adopts them and asks again.
    const res = await appendReconciled(db, {
      streamId: runStreamId(input.decisionId),
      tenantId: input.tenantId,
      expectedVersion: input.headVersion,
      recordedAt: new Date(),
      events: [receiptEvent(input, events, await keyring())],
    });
    if (res.written === 1 && res.adopted.length === 0) return { streamVersion: res.streamVersion };
    return { streamVersion: res.streamVersion, issued: res.written === 1, adopted: res.adopted as AdoptedEvent[] };
  };
}

/**
 * The ReceiptIssued event over a run's events up to `headVersion`: stored ones read back here, or the rows of
 * the run's first append about to be stored (activities/append-run-events.ts), which sign the same bytes.
 */
export function receiptEvent(input: IssueReceiptInput, events: readonly ReceiptSource[], keyring: Keyring): NewEvent {
  const receipt = buildReceipt(events);
  if (!receipt) throw new Error(`run ${input.decisionId} has no receipt to issue at version ${input.headVersion}`);
  const signed = signReceipt(receipt, keyring);
  return {
    type: 'ReceiptIssued',
    eventId: runEventId(input.decisionId, input.headVersion + 1),
    data: { receipt_digest: sha256Digest(signed.receipt), head_version: input.headVersion, signature: signed.signature },
    metadata: { workflow_id: input.workflowId },
  };
}
