import { parentPort } from 'node:worker_threads';
import { StoredEvent } from '../../schemas/events.ts';
import { eventHash } from '../events/hash-chain.ts';
import { ed25519Verify } from '../receipts/verify.ts';
import { DONE_BAD, DONE_OK, type WorkerBatch } from './replay-pool.ts';

/**
 * One replay worker: pure checks over plain data, answered through shared memory (replay-pool.ts).
 * Never throws on bad input: anything that cannot be checked is reported as not matching, and the main
 * thread (which validated the same record) decides what that means.
 */
function hashMatches(value: string): boolean {
  try {
    // The same parse as Replay.add, so the hash is taken over exactly the event the main thread holds.
    const e = StoredEvent.safeParse(JSON.parse(value));
    return e.success && eventHash(e.data) === e.data.hash;
  } catch {
    return false;
  }
}

function signatureMatches(canonical: string, x: string, sig: string): boolean {
  try {
    return ed25519Verify(x, Buffer.from(canonical, 'utf8'), Buffer.from(sig, 'base64url'));
  } catch {
    return false;
  }
}

parentPort!.on('message', (batch: WorkerBatch) => {
  const results = new Int32Array(batch.results);
  for (const job of batch.jobs) {
    const ok = job.kind === 'hash' ? hashMatches(job.value) : signatureMatches(job.canonical, job.x, job.sig);
    Atomics.store(results, job.slot, ok ? DONE_OK : DONE_BAD);
    Atomics.notify(results, job.slot);
  }
});
