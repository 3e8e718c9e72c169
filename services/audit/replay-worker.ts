import { parentPort } from 'node:worker_threads';
import { sha256OfCanonical } from '../receipts/canonical.ts';
import { ed25519Verify } from '../receipts/verify.ts';
import { DONE_BAD, DONE_BAD_SIGNATURE, DONE_OK, DONE_UNSURE, type ReceiptJob, type WorkerBatch } from './replay-pool.ts';

/**
 * One replay worker: pure checks over plain data, answered through shared memory (replay-pool.ts).
 * Never throws on bad input: anything that cannot be checked is reported as not matching, and the main
 * thread (which validated the same record) decides what that means.
 */
function receiptChecks(job: ReceiptJob): number {
  try {
    const canonical = job.canonical;
    if (job.digest !== null && sha256OfCanonical(canonical) !== job.digest) return DONE_BAD;
    if (job.x === null || job.sig === null) return DONE_OK;
    return ed25519Verify(job.x, Buffer.from(canonical, 'utf8'), Buffer.from(job.sig, 'base64url')) ? DONE_OK : DONE_BAD_SIGNATURE;
  } catch {
    return DONE_UNSURE;
  }
}

parentPort!.on('message', (batch: WorkerBatch) => {
  const results = new Int32Array(batch.results);
  for (const job of batch.jobs) {
    const outcome = receiptChecks(job);
    Atomics.store(results, job.slot, outcome);
    Atomics.notify(results, job.slot);
  }
});
