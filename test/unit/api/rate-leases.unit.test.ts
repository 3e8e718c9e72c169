import { describe, expect, it } from 'vitest';
import { LeasedRateBuckets, RateBuckets, type Hit, type Lease, type LeaseStore } from '../../../services/api/rate-buckets.ts';

/**
 * The leases as migration 0029 grants them (countersign_rate_lease / countersign_rate_return), in memory, on a
 * clock the test moves: one window per bucket from its first lease, never more permits granted in it than the
 * limit, spares at most a quarter of what the needed ones leave and none from the last quarter of the limit. `pause` lets the test delay the way there and
 * back, so leases of several processes overlap and answers arrive late.
 */
class MemoryLeases implements LeaseStore {
  readonly windows = new Map<string, Array<{ start: number; granted: number }>>();
  constructor(readonly max: number, readonly windowMs: number, readonly clock: () => number, readonly pause: () => Promise<void> = async () => {}) {}

  private current(bucket: string, t: number) {
    const list = this.windows.get(bucket) ?? [];
    this.windows.set(bucket, list);
    let w = list[list.length - 1];
    if (!w || w.start + this.windowMs <= t) {
      w = { start: t, granted: 0 };
      list.push(w);
    }
    return w;
  }

  async lease(bucket: string, need: number, extra: number): Promise<Lease> {
    await this.pause();
    const t = this.clock();
    const w = this.current(bucket, t);
    const forNeed = Math.max(0, Math.min(need, this.max - w.granted));
    const forExtra = Math.max(0, Math.min(extra, Math.floor((this.max - w.granted - forNeed - Math.floor(this.max / 4)) / 4)));
    w.granted += forNeed + forExtra;
    const answer = { granted: forNeed + forExtra, windowStart: w.start, resetMs: w.start + this.windowMs - t };
    await this.pause();
    return answer;
  }

  async giveBack(bucket: string, windowStart: number, count: number): Promise<void> {
    await this.pause();
    const w = this.windows.get(bucket)?.find((x) => x.start === windowStart);
    if (w && w.start + this.windowMs > this.clock()) w.granted = Math.max(0, w.granted - count);
  }

  /** How many of these served hits fall in each of the bucket's windows (by the store's clock). */
  servedPerWindow(bucket: string, servedAt: number[]): number[] {
    return (this.windows.get(bucket) ?? []).map((w) => servedAt.filter((t) => t >= w.start && t < w.start + this.windowMs).length);
  }

  /** Served hits outside every window of the bucket: permits spent after their window ended. */
  servedOutside(bucket: string, servedAt: number[]): number {
    const windows = this.windows.get(bucket) ?? [];
    return servedAt.filter((t) => !windows.some((w) => t >= w.start && t < w.start + this.windowMs)).length;
  }
}

const settle = () => new Promise<void>((r) => setImmediate(r));

describe('rate limits leased in blocks (LeasedRateBuckets)', () => {
  it('attack: several processes, bursts and steady traffic over many windows, never serve more than the limit in a window', async () => {
    const MAX = 20;
    const WINDOW = 1_000;
    let now = 0;
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    // Each process's lease answer is held up a random number of turns: leases overlap and answers come late.
    const store = new MemoryLeases(MAX, WINDOW, () => now, async () => { for (let i = Math.floor(random() * 4); i > 0; i--) await settle(); });
    const processes = Array.from({ length: 4 }, () => new LeasedRateBuckets(store, MAX, WINDOW, new RateBuckets(MAX, WINDOW), () => {}, () => now, 100));
    const servedAt: number[] = [];
    let attempts = 0;
    for (let step = 0; step < 1_000; step++) {
      const burst = Math.floor(random() * 8);
      const hits: Array<Promise<Hit>> = [];
      for (let i = 0; i < burst; i++) {
        const p = processes[Math.floor(random() * processes.length)]!;
        attempts += 1;
        const at = now;
        hits.push(Promise.resolve(p.hit('prn:t/bot')).then((h) => { if (h.allowed) servedAt.push(at); return h; }));
      }
      await Promise.all(hits);
      if (random() < 0.2) await processes[Math.floor(random() * processes.length)]!.returnIdle();
      // Mostly small steps; now and then a quiet spell that ends a window while spares are held.
      now += random() < 0.1 ? 500 + Math.floor(random() * 1_000) : Math.floor(random() * 40);
    }
    const perWindow = store.servedPerWindow('prn:t/bot', servedAt);
    const through = perWindow.reduce((sum, n) => sum + Math.max(0, n - MAX), 0) + store.servedOutside('prn:t/bot', servedAt);
    console.log(`attack rate-lease-over-four-processes: ${attempts} attempts, ${through} got through (${servedAt.length} served in ${perWindow.length} windows of at most ${MAX})`);
    expect(servedAt.length).toBeGreaterThan(MAX);
    expect(through).toBe(0);
  });

  it('requests alternating over two processes: exactly the limit is served, then both refuse', async () => {
    for (const max of [1, 2, 5, 8, 13, 40, 100]) {
      const store = new MemoryLeases(max, 60_000, () => 0);
      const [a, b] = [0, 1].map(() => new LeasedRateBuckets(store, max, 60_000, new RateBuckets(max, 60_000), () => {}, () => 0));
      const served: boolean[] = [];
      for (let i = 0; i < max; i++) {
        served.push((await (i % 2 === 0 ? a! : b!).hit('k')).allowed);
        await settle(); // a spare lease started by this request may or may not be back before the next one
      }
      expect(served).toEqual(Array(max).fill(true));
      expect((await a!.hit('k')).allowed).toBe(false);
      expect((await b!.hit('k')).allowed).toBe(false);
    }
  });

  it('a burst spread over two processes gets exactly the limit', async () => {
    const store = new MemoryLeases(8, 60_000, () => 0, settle);
    const [a, b] = [0, 1].map(() => new LeasedRateBuckets(store, 8, 60_000, new RateBuckets(8, 60_000), () => {}, () => 0));
    const hits = await Promise.all(Array.from({ length: 48 }, (_, i) => Promise.resolve((i % 2 === 0 ? a! : b!).hit('k'))));
    expect(hits.filter((h) => h.allowed)).toHaveLength(8);
    expect(Math.min(...hits.filter((h) => !h.allowed).map((h) => h.retryAfterMs))).toBeGreaterThan(0);
  });

  it('a steady client costs one lease per block, not one per request', async () => {
    let leases = 0;
    const store = new MemoryLeases(1_000_000, 60_000, () => 0);
    const counting: LeaseStore = { lease: (k, n, e) => { leases += 1; return store.lease(k, n, e); }, giveBack: (k, w, c) => store.giveBack(k, w, c) };
    const p = new LeasedRateBuckets(counting, 1_000_000, 60_000, new RateBuckets(1, 60_000), () => {}, () => 0);
    for (let i = 0; i < 1_000; i++) {
      expect((await p.hit('k')).allowed).toBe(true);
      await settle();
    }
    expect(leases).toBeLessThan(1_000 / 10);
  });

  it('gives back the spares of a quiet client, for the other processes to use', async () => {
    let now = 0;
    const store = new MemoryLeases(40, 60_000, () => now);
    const [a, b] = [0, 1].map(() => new LeasedRateBuckets(store, 40, 60_000, new RateBuckets(40, 60_000), () => {}, () => now, 1_000));
    for (let i = 0; i < 10; i++) {
      await a!.hit('k');
      await settle();
    }
    const held = store.windows.get('k')![0]!.granted - 10;
    expect(held).toBeGreaterThan(0);
    now += 1_000;
    await a!.returnIdle();
    expect(store.windows.get('k')![0]!.granted).toBe(10);
    const served: boolean[] = [];
    for (let i = 0; i < 30; i++) served.push((await b!.hit('k')).allowed);
    expect(served).toEqual(Array(30).fill(true));
    expect((await b!.hit('k')).allowed).toBe(false);
  });

  it('never spends a permit after its window ended, by a clock that starts when the lease was asked for', async () => {
    let now = 0;
    // The database reads its clock 5 ms after the process asked (the way there): its window ends 5 ms later
    // than the process's count of the remaining time, never earlier.
    const store = new MemoryLeases(100, 1_000, () => now + 5);
    const p = new LeasedRateBuckets(store, 100, 1_000, new RateBuckets(100, 1_000), () => {}, () => now);
    expect((await p.hit('k')).allowed).toBe(true);
    now = 999;
    expect((await p.hit('k')).allowed).toBe(true); // a spare, 1 ms before the window ends
    await settle();
    now = 1_000;
    expect((await p.hit('k')).allowed).toBe(true); // the old window's spares are void: leased in the new window
    expect(store.windows.get('k')!.map((w) => w.start)).toEqual([5, 1_005]);
    expect(store.servedPerWindow('k', [5, 1_004, 1_005])).toEqual([2, 1]);
  });

  it('counts in memory when the store fails, and says so', async () => {
    const errors: unknown[] = [];
    const failing: LeaseStore = { lease: async () => { throw new Error('connection refused'); }, giveBack: async () => {} };
    const p = new LeasedRateBuckets(failing, 2, 60_000, new RateBuckets(2, 60_000), (err) => errors.push(err));
    const hits = [await p.hit('k'), await p.hit('k'), await p.hit('k')];
    expect(hits.map((h) => h.allowed)).toEqual([true, true, false]);
    expect(errors).toHaveLength(3);
  });
});
