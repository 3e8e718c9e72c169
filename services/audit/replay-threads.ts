import { availableParallelism } from 'node:os';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { Contested, EventCopy, FoldOut, Misrouted, RunOut, SharedFacts, ShardOptions } from './replay-shard.ts';

/**
 * The replay's shards on worker threads (replay-worker.ts), one per core by default. While the source is read
 * the caller only routes records (their JSON text, in batches, no parse); each thread parses, validates and
 * hashes its streams' records as they arrive. `Replay.finish()` stays synchronous: each step of the finish is a
 * request on a thread's port whose answer is taken with `receiveMessageOnPort`, the caller blocking on
 * `Atomics.wait` until the thread says it has answered. A thread that fails answers with its error; one that
 * dies or hangs (no answer and no progress for STALL_MS) fails the replay: a result is never guessed.
 */

/** Records per message while the source is read. */
const BATCH = 512;
/**
 * A shard keeps every event of its streams until the end, so most of what survives a young-generation
 * collection is copied once more into the old one; a larger young generation (about 32 MB semi-spaces) collects
 * less often and copies less (about 6% less CPU measured).
 */
const YOUNG_GENERATION_MB = 96;
/** A profiled process's threads are profiled too (nothing else of its command line applies to them). */
const PROFILE_ARGS = process.execArgv.filter((a) => a.startsWith('--cpu-prof'));
/** No answer and no progress this long: the thread died or hangs. */
const STALL_MS = 120_000;

/** Requests to a shard's thread; each but `records` is answered (ShardReply). */
export type ShardRequest =
  | { op: 'begin'; opts: Omit<ShardOptions, 'upcasters'> }
  | { op: 'end' }
  | { op: 'records'; first: number[]; values: Array<string | null>; wheres: string[]; late: boolean }
  | { op: 'misrouted' }
  | { op: 'fingerprints' }
  | { op: 'copies'; fingerprints: number[] }
  | { op: 'fold'; contested: Contested }
  | { op: 'runs'; facts: SharedFacts; nowMs: number };
export type ShardReply = { ok: true; value: unknown } | { ok: false; error: string };
/** What a thread starts with: its number, its port, and the shared words it signals through. */
export type ShardThreadData = { shard: number; port: MessagePort; signals: SharedArrayBuffer };

/** Threads left from a finished replay, for the next one in this process (started and compiled once). */
const idle: ShardThreads[] = [];

/**
 * Ends the threads finished replays left for the next one. Never needed for the process to exit (they are
 * unref'd); for a process that wants them gone, e.g. so `--cpu-prof` writes their profiles.
 */
export async function endIdleShardThreads(): Promise<void> {
  await Promise.all(idle.splice(0).map((t) => t.close()));
}

/** Per thread, two words in `signals`: [answers given, progress made]. */
export const ANSWERED = 0;
export const PROGRESS = 1;

type Thread = { worker: Worker; port: MessagePort; batch: { first: number[]; values: Array<string | null>; wheres: string[] } };

export class ShardThreads {
  private readonly threads: Thread[] = [];
  private readonly signals: Int32Array;
  private failure: string | null = null;

  private constructor(count: number) {
    const shared = new SharedArrayBuffer(4 * 2 * count);
    this.signals = new Int32Array(shared);
    const entry = new URL('./replay-worker.mjs', import.meta.url);
    for (let shard = 0; shard < count; shard++) {
      const { port1, port2 } = new MessageChannel();
      const workerData: ShardThreadData = { shard, port: port2, signals: shared };
      const worker = new Worker(entry, { execArgv: PROFILE_ARGS, workerData, transferList: [port2], resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
      worker.unref();
      worker.on('error', (err) => { this.failure ??= err instanceof Error ? err.message : String(err); });
      this.threads.push({ worker, port: port1, batch: { first: [], values: [], wheres: [] } });
    }
  }

  /**
   * `count` threads (default: one per core, at most 4) for one replay, or null when none can be started: those a
   * finished replay left, or new ones. Each starts a fresh shard with these options; release() when done.
   */
  static acquire(opts: Omit<ShardOptions, 'upcasters' | 'shard' | 'shards'>, count = Math.min(4, availableParallelism())): ShardThreads | null {
    if (count < 1) return null;
    let threads = idle.findIndex((t) => t.count === count) >= 0 ? idle.splice(idle.findIndex((t) => t.count === count), 1)[0]! : null;
    try {
      threads ??= new ShardThreads(count);
    } catch {
      return null;
    }
    threads.threads.forEach((t, shard) => t.port.postMessage({ op: 'begin', opts: { ...opts, shard, shards: count } } satisfies ShardRequest));
    return threads;
  }

  /** After a replay: its shards are dropped and the threads kept for the next one (or ended, if one failed). */
  release(): void {
    if (this.failure || this.threads.some((t) => t.batch.values.length > 0) || idle.length > 0) {
      void this.close();
      return;
    }
    for (const t of this.threads) t.port.postMessage({ op: 'end' } satisfies ShardRequest);
    idle.push(this);
  }

  get count(): number {
    return this.threads.length;
  }

  /** Queues a record for a shard; sent with the next full batch. */
  route(shard: number, index: number, value: string | null, where: string): void {
    const b = this.threads[shard]!.batch;
    b.first.push(index);
    b.values.push(value);
    b.wheres.push(where);
    if (b.values.length >= BATCH) this.send(shard, false);
  }

  /** Records found, once parsed, to be another shard's: handed to it with their arrival indexes. */
  handOver(records: Misrouted[]): void {
    for (const r of records) {
      const b = this.threads[r.shard]!.batch;
      b.first.push(r.index);
      b.values.push(r.value);
      b.wheres.push(r.where);
    }
    for (let i = 0; i < this.threads.length; i++) this.send(i, true);
  }

  flush(): void {
    for (let i = 0; i < this.threads.length; i++) this.send(i, false);
  }

  misrouted(): Misrouted[] {
    return this.askAll<Misrouted[]>(() => ({ op: 'misrouted' })).flat();
  }

  fingerprints(): Float64Array[] {
    return this.askAll<Float64Array>(() => ({ op: 'fingerprints' }));
  }

  /** Every copy the shards hold of the event ids with these fingerprints, each with the shard that holds it. */
  copies(fingerprints: number[]): Array<EventCopy & { shard: number }> {
    return this.askAll<EventCopy[]>(() => ({ op: 'copies', fingerprints })).flatMap((copies, shard) => copies.map((c) => ({ ...c, shard })));
  }

  fold(contested: Contested): FoldOut[] {
    return this.askAll<FoldOut>(() => ({ op: 'fold', contested }));
  }

  runs(facts: SharedFacts, nowMs: number): RunOut[][] {
    return this.askAll<RunOut[]>(() => ({ op: 'runs', facts, nowMs }));
  }

  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    for (const t of threads) t.port.close();
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private send(shard: number, late: boolean): void {
    const t = this.threads[shard]!;
    if (t.batch.values.length === 0) return;
    t.port.postMessage({ op: 'records', ...t.batch, late } satisfies ShardRequest);
    t.batch = { first: [], values: [], wheres: [] };
  }

  /** Asks every thread at once, then takes their answers in shard order. */
  private askAll<T>(request: () => ShardRequest): T[] {
    if (this.failure) throw new Error(`replay thread failed: ${this.failure}`);
    this.flush();
    const answered = this.threads.map((_, i) => Atomics.load(this.signals, 2 * i + ANSWERED));
    this.threads.forEach((t) => t.port.postMessage(request()));
    return this.threads.map((t, i) => this.answer<T>(t, i, answered[i]!));
  }

  private answer<T>(t: Thread, i: number, before: number): T {
    let progress = Atomics.load(this.signals, 2 * i + PROGRESS);
    for (;;) {
      const count = Atomics.load(this.signals, 2 * i + ANSWERED);
      if (count !== before) {
        const m = receiveMessageOnPort(t.port);
        if (m) {
          const reply = m.message as ShardReply;
          if (!reply.ok) throw new Error(`replay thread ${i} failed: ${reply.error}`);
          return reply.value as T;
        }
      }
      if (Atomics.wait(this.signals, 2 * i + ANSWERED, count, STALL_MS) === 'timed-out') {
        const now = Atomics.load(this.signals, 2 * i + PROGRESS);
        if (now === progress) throw new Error(`replay thread ${i} stopped answering (no progress in ${STALL_MS / 1000} s)`);
        progress = now;
      }
    }
  }
}
