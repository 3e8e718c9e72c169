import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** A thread's part of the floor: event records as JSON text, and signed bytes with their key (x) and signature. */
export type FloorShare = { events: string[]; sigs: Array<{ bytes: string; x: string; sig: string }> };

/**
 * The cryptographic floor of an audit replay, on every core: SHA-256 over every event's canonical form and one
 * Ed25519 verification per signature, split evenly over one thread per core. Inputs are handed over and
 * prepared (parsed, keys and buffers made) before the clock starts; a round is the time from `go` until the
 * last thread is done. What a replay cannot do faster however it is written.
 */
export class CryptoFloor {
  private constructor(private readonly workers: Worker[]) {}

  static async create(input: FloorShare, threads = availableParallelism()): Promise<CryptoFloor> {
    const workers = Array.from({ length: threads }, () => new Worker(new URL('./crypto-floor-worker.mjs', import.meta.url)));
    const slice = <T>(xs: T[], i: number) => xs.filter((_, j) => j % threads === i);
    await Promise.all(workers.map((w, i) => new Promise<void>((resolve, reject) => {
      w.once('error', reject);
      w.once('message', () => resolve());
      w.postMessage({ share: { events: slice(input.events, i), sigs: slice(input.sigs, i) } satisfies FloorShare });
    })));
    return new CryptoFloor(workers);
  }

  /** One round: seconds from `go` until every thread is done. Throws if any hash or signature failed. */
  async round(): Promise<number> {
    const t = performance.now();
    const bad = await Promise.all(this.workers.map((w) => new Promise<number>((resolve, reject) => {
      w.once('error', reject);
      w.once('message', (m: { bad: number }) => resolve(m.bad));
      w.postMessage({ go: true });
    })));
    const s = (performance.now() - t) / 1000;
    const failed = bad.reduce((a, b) => a + b, 0);
    if (failed) throw new Error(`${failed} hashes or signatures failed in the floor`);
    return s;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
