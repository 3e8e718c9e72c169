import type { Db } from '../services/events/db.ts';
import { appendToStream, type SealedRow } from '../services/events/append-to-stream.ts';
import { runEventId, runStreamId } from '../services/decisions/ids.ts';
import { buildReceipt } from '../services/receipts/build-receipt.ts';
import { sha256Digest } from '../services/receipts/canonical.ts';
import type { Keyring } from '../services/receipts/keyring.ts';
import { signReceipt } from '../services/receipts/sign.ts';
import type { NewEvent } from '../schemas/events.ts';
import type { AppendRunEventsInput, AppendRunEventsResult, IssueReceiptInput } from './types.ts';

/**
 * Appends a run's events. Idempotent: the workflow passes the expected version and derived event ids, so an
 * activity retried after its commit (worker crash, lost response) finds its events recorded and writes
 * nothing new.
 */
export type ReceiptDeps = { keyring: () => Promise<Keyring>; issueReceipt: (input: IssueReceiptInput) => Promise<{ streamVersion: number }> };

export function makeAppendRunEvents(db: Db, crashAt?: string, receipts?: ReceiptDeps) {
  return async function appendRunEvents(input: AppendRunEventsInput): Promise<AppendRunEventsResult> {
    if (input.withReceipt && !receipts) throw new Error('appendRunEvents: withReceipt needs the receipt issuer');
    // A run's first events and their receipt go in one statement: the receipt is built from the rows as they
    // will be stored and signed before they are sent. Later batches append, then issue the receipt after them.
    const head = input.expectedVersion + input.events.length;
    const seal = input.withReceipt && input.expectedVersion === 0 ? sealWith(input, await receipts!.keyring(), head) : undefined;
    const res = await appendToStream(db, {
      ...(seal ? { seal } : {}),
      streamId: runStreamId(input.decisionId),
      tenantId: input.tenantId,
      expectedVersion: input.expectedVersion,
      // Metadata (issue 4): correlation = the decision the run belongs to; causation = the workflow that wrote it.
      events: input.events.map((e) => ({ ...e, metadata: { causation_id: input.workflowId, correlation_id: input.decisionId, ...e.metadata, workflow_id: input.workflowId } })),
      recordedAt: new Date(),
      alsoInTransaction: async (client) => {
        if (input.idempotency) {
          await client.query(
            `INSERT INTO idempotency_keys (tenant_id, idempotency_key, decision_id, request_digest) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING`,
            [input.tenantId, input.idempotency.key, input.decisionId, input.idempotency.requestDigest],
          );
        }
        if (input.counters?.entries.length) {
          await client.query(
            `INSERT INTO counter_entries (tenant_id, key, decision_id, at, amount)
             SELECT $1, k, $2, $3::timestamptz, a FROM unnest($4::text[], $5::float8[]) AS t(k, a)
             ON CONFLICT (decision_id, key) DO NOTHING`,
            [input.tenantId, input.decisionId, input.counters.at, input.counters.entries.map((e) => e.key), input.counters.entries.map((e) => e.amount)],
          );
        }
      },
    });
    if (crashAt === 'after-append-commit') crash();
    if (input.withReceipt && !seal) {
      // The batch's own head, not the stream's: a retry finds the receipt already appended after it.
      const receipt = await receipts!.issueReceipt({ decisionId: input.decisionId, tenantId: input.tenantId, headVersion: head, workflowId: input.workflowId });
      return { streamVersion: receipt.streamVersion, duplicate: res.duplicate };
    }
    return { streamVersion: res.streamVersion, duplicate: res.duplicate };
  };
}

/** The ReceiptIssued event over a run's first rows, exactly as issueReceipt would sign it after reading them. */
function sealWith(input: AppendRunEventsInput, keyring: Keyring, head: number) {
  return (rows: readonly SealedRow[]): NewEvent => {
    const receipt = buildReceipt(rows);
    if (!receipt) throw new Error(`run ${input.decisionId} has no receipt to issue at version ${head}`);
    const signed = signReceipt(receipt, keyring);
    return {
      type: 'ReceiptIssued',
      eventId: runEventId(input.decisionId, head + 1),
      data: { receipt_digest: sha256Digest(signed.receipt), head_version: head, signature: signed.signature },
      metadata: { workflow_id: input.workflowId },
    };
  };
}

/**
 * Test-only crash point: with COUNTERSIGN_CRASH_AT=after-append-commit the worker process dies here, after the
 * commit and before the activity returns, to prove that the retry writes nothing new.
 */
function crash(): void {
  process.kill(process.pid, 'SIGKILL');
}
