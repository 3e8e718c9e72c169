import { createPrivateKey } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { runEventId, runStreamId } from '../../services/decisions/ids.ts';
import { buildReceipt } from '../../services/receipts/build-receipt.ts';
import { sha256Digest } from '../../services/receipts/canonical.ts';
import { Keyring } from '../../services/receipts/keyring.ts';
import { signReceipt } from '../../services/receipts/sign.ts';
import { exampleSnapshot, firstRunEvents, storeOffline, syntheticDecisionId, syntheticRequest } from '../../services/audit/synthetic-runs.ts';

/**
 * One generating thread of bench/replay-million.ts: the runs i = thread, thread + threads, ... of the same
 * synthetic log as syntheticLog (services/audit/synthetic-runs.ts), signed with the bench's key, sent back as
 * Kafka messages (stream id, record text) in chunks, so no thread ever holds the whole log.
 * Run i's events take positions 2 + 4i .. 5 + 4i (position 1 is the policy's activation).
 */
type Input = { pem: string; key: ConstructorParameters<typeof Keyring>[1][number]; tenantId: string; tag: string; now: string; runs: number; thread: number; threads: number; chunk: number };
const input = workerData as Input;
const keyring = new Keyring(createPrivateKey(input.pem), [input.key]);
const now = new Date(input.now);
const { snapshot, policies } = exampleSnapshot();
let out: Array<{ key: string; value: string }> = [];
let events = 0;
for (let i = input.thread; i < input.runs; i += input.threads) {
  let position = 1 + 4 * i;
  const next = () => String((position += 1));
  const decisionId = syntheticDecisionId(input.tag, i);
  const stream = runStreamId(decisionId);
  const first = storeOffline(stream, input.tenantId, firstRunEvents({ decisionId, tenantId: input.tenantId, request: syntheticRequest(i), snapshot, policies, now, keyring }), null, now, next);
  const run = [...first];
  if (first.length === 3) {
    const signed = signReceipt(buildReceipt(first)!, keyring);
    const head = first[2]!;
    run.push(...storeOffline(stream, input.tenantId, [{ type: 'ReceiptIssued', eventId: runEventId(decisionId, 4), data: { receipt_digest: sha256Digest(signed.receipt), head_version: 3, signature: signed.signature }, metadata: { correlation_id: decisionId } }], head, now, next));
  }
  for (const e of run) out.push({ key: e.stream_id, value: JSON.stringify(e) });
  events += run.length;
  if (out.length >= input.chunk) {
    parentPort!.postMessage({ messages: out });
    out = [];
  }
}
parentPort!.postMessage({ messages: out, done: true, events });
