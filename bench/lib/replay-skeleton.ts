import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { PublicKeySet } from '../../schemas/receipt.ts';
import { shardOfRecord } from '../../services/audit/replay.ts';
import type { createKafkaSource } from '../../services/publisher/kafka.ts';

export type SkeletonRequest = { op: 'begin'; keys: PublicKeySet['keys'] } | { op: 'records'; values: string[] } | { op: 'end' };
export type SkeletonAnswer = { events: number; starts: number; receipts: number; bad: number };

const BATCH = 512;

/**
 * The part of `audit replay` no replay that checks the floor's cryptography from the log can leave out, laid
 * out as the replay is: records read from Kafka on this thread and routed unparsed, by stream id, to one thread
 * per core, which parse and hash them as they arrive, then rebuild and verify every run start and receipt
 * (replay-skeleton-worker.ts). Everything else the replay does (validation of every record and its data,
 * deduplication, chain linkage, re-evaluation, the policy, tenant and catalog streams, coverage) is left out.
 * Its time against the floor is the best ratio any replay built from these parts can reach.
 */
export class ReplaySkeleton {
  private constructor(private readonly workers: Worker[]) {}

  static create(threads = availableParallelism()): ReplaySkeleton {
    return new ReplaySkeleton(Array.from({ length: threads }, () => new Worker(new URL('./replay-skeleton-worker.mjs', import.meta.url))));
  }

  /** One pass over the topic; throws if any hash or signature failed. */
  async run(source: ReturnType<typeof createKafkaSource>, keys: PublicKeySet): Promise<SkeletonAnswer> {
    const n = this.workers.length;
    for (const w of this.workers) w.postMessage({ op: 'begin', keys: keys.keys } satisfies SkeletonRequest);
    const batches: string[][] = this.workers.map(() => []);
    const send = (i: number) => {
      if (batches[i]!.length === 0) return;
      this.workers[i]!.postMessage({ op: 'records', values: batches[i]! } satisfies SkeletonRequest);
      batches[i] = [];
    };
    await source.readToEnd((r) => {
      if (r.value === null) return;
      const i = shardOfRecord(r.value, n);
      batches[i]!.push(r.value);
      if (batches[i]!.length >= BATCH) send(i);
    });
    for (let i = 0; i < n; i++) send(i);
    const answers = await Promise.all(this.workers.map((w) => new Promise<SkeletonAnswer>((resolve, reject) => {
      w.once('error', reject);
      w.once('message', resolve);
      w.postMessage({ op: 'end' } satisfies SkeletonRequest);
    })));
    const sum = answers.reduce((a, b) => ({ events: a.events + b.events, starts: a.starts + b.starts, receipts: a.receipts + b.receipts, bad: a.bad + b.bad }));
    if (sum.bad) throw new Error(`${sum.bad} hashes or signatures failed in the skeleton`);
    return sum;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
