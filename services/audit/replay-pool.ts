import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * Worker threads for the auditor's replay: the check that dominates its CPU time, pure over plain data, runs
 * here while the main thread goes on with everything else (events' hashes are checked on the main thread as
 * records arrive, from the event it parsed: a thread would have to parse the record again):
 * - a rebuilt receipt's digest and its Ed25519 signature over its canonical JSON (made on the main thread, which
 *   holds the receipt: sending the canonical text costs no parse and no second canonicalisation here).
 *
 * `Replay.finish()` stays synchronous: results come back through shared memory, and the main thread blocks on
 * `Atomics.wait` only for a result it needs and is not there yet. If a worker fails or stalls, the pool is
 * marked broken and the caller computes the result itself (a result is never guessed).
 */

export const DONE_OK = 1;
export const DONE_BAD = 2;
/** A receipt job whose digest matched but whose signature did not. */
export const DONE_BAD_SIGNATURE = 3;
/** The worker cannot answer for sure (an input it does not handle exactly as the main thread): compute it there. */
export const DONE_UNSURE = 4;
const SLOTS_PER_BUFFER = 8192;
const BATCH = 256;
/** A result this late means a worker died or hangs: give up on the pool, compute inline. */
const STALL_MS = 15_000;

/** `canonical`: the rebuilt receipt's canonical JSON; its digest compared, then its signature checked when `x` is given. */
export type ReceiptJob = { kind: 'receipt'; slot: number; canonical: string; digest: string | null; x: string | null; sig: string | null };
type Job = ReceiptJob;
export type WorkerBatch = { results: SharedArrayBuffer; jobs: Job[] };

export type Ticket = number;

export class ReplayPool {
  private readonly workers: Worker[] = [];
  private readonly shared: SharedArrayBuffer[] = [];
  private readonly buffers: Int32Array[] = [];
  private readonly pending = new Map<number, Job[]>();
  private next = 0;
  private turn = 0;
  private broken = false;

  private constructor(workers: number) {
    const entry = new URL('./replay-worker.mjs', import.meta.url);
    for (let i = 0; i < workers; i++) {
      const w = new Worker(entry, { execArgv: [] });
      w.unref();
      w.on('error', () => { this.broken = true; });
      this.workers.push(w);
    }
  }

  /** A pool of `workers` threads (default: one per core), or null when none can be started. */
  static create(workers = Math.min(4, availableParallelism())): ReplayPool | null {
    if (workers < 1) return null;
    try {
      return new ReplayPool(workers);
    } catch {
      return null;
    }
  }

  /**
   * Queues a rebuilt receipt's checks: the sha256 of its canonical JSON (`canonical`) against `digest` (DONE_BAD when it
   * differs), then, with a key, the Ed25519 signature (base64url) over the same bytes (DONE_BAD_SIGNATURE).
   * With `digest` null, only the signature (a signed document that records no digest of itself: a run's start).
   */
  receipt(canonical: string, digest: string | null, x: string | null, sig: string | null): Ticket {
    return this.submit((slot) => ({ kind: 'receipt', slot, canonical, digest, x, sig }));
  }

  /** Sends every queued job. */
  flush(): void {
    for (const [b, jobs] of this.pending) this.post(b, jobs);
    this.pending.clear();
  }

  /** The job's answer (DONE_*), waiting for it if need be; null when the pool cannot give it (compute it yourself). */
  result(ticket: Ticket): number | null {
    const b = Math.floor(ticket / SLOTS_PER_BUFFER);
    const slot = ticket % SLOTS_PER_BUFFER;
    if (this.pending.has(b)) {
      this.post(b, this.pending.get(b)!);
      this.pending.delete(b);
    }
    const results = this.buffers[b]!;
    let v = Atomics.load(results, slot);
    while (v === 0 && !this.broken) {
      if (Atomics.wait(results, slot, 0, STALL_MS) === 'timed-out') this.broken = true;
      v = Atomics.load(results, slot);
    }
    return v === 0 || v === DONE_UNSURE ? null : v;
  }

  close(): void {
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
  }

  private submit(make: (slot: number) => Job): Ticket {
    const ticket = this.next++;
    const b = Math.floor(ticket / SLOTS_PER_BUFFER);
    if (b === this.buffers.length) {
      const sab = new SharedArrayBuffer(4 * SLOTS_PER_BUFFER);
      this.shared.push(sab);
      this.buffers.push(new Int32Array(sab));
    }
    let jobs = this.pending.get(b);
    if (!jobs) this.pending.set(b, (jobs = []));
    jobs.push(make(ticket % SLOTS_PER_BUFFER));
    if (jobs.length >= BATCH) {
      this.post(b, jobs);
      this.pending.delete(b);
    }
    return ticket;
  }

  private post(b: number, jobs: Job[]): void {
    if (this.broken || this.workers.length === 0) return;
    const w = this.workers[this.turn++ % this.workers.length]!;
    try {
      w.postMessage({ results: this.shared[b]!, jobs } satisfies WorkerBatch);
    } catch {
      this.broken = true;
    }
  }
}
