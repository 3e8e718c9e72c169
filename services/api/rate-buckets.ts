import ipaddr from 'ipaddr.js';
import type { Db } from '../events/db.ts';

/** What one hit on a bucket found: whether it is within the limit, and when the bucket's window ends. */
export type Hit = { allowed: boolean; retryAfterMs: number };

/** A request counter: one hit on a bucket, and whether it is within the limit. */
export type RateCounter = { hit(key: string): Hit | Promise<Hit> };

/**
 * Fixed-window request counters by key, in this process's memory. At most `maxKeys` buckets are kept; past
 * that the one whose window started first is dropped (a Map keeps insertion order, and a bucket is
 * re-inserted when its window restarts), so a flood of distinct keys costs bounded memory.
 */
export class RateBuckets {
  private readonly buckets = new Map<string, { count: number; resetAt: number }>();

  constructor(readonly max: number, readonly windowMs: number, private readonly maxKeys = 100_000, private readonly now: () => number = Date.now) {}

  hit(key: string): Hit {
    const t = this.now();
    let bucket = this.buckets.get(key);
    if (!bucket || bucket.resetAt <= t) {
      this.buckets.delete(key);
      bucket = { count: 0, resetAt: t + this.windowMs };
      this.buckets.set(key, bucket);
      if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    }
    bucket.count++;
    return { allowed: bucket.count <= this.max, retryAfterMs: bucket.resetAt - t };
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** Refusals remembered in memory, at most (oldest dropped first). */
const MAX_REMEMBERED_REFUSALS = 100_000;

/** What a lease of a bucket's permits got: how many, the window they belong to (by its start) and the ms until it ends. */
export type Lease = { granted: number; windowStart: number; resetMs: number };

/** Where the permits of every API process come from: one window per bucket, never more granted in it than the limit. */
export type LeaseStore = {
  /** Up to `need` permits as far as the limit allows, plus up to `extra` spares (the store may grant fewer). */
  lease(bucket: string, need: number, extra: number): Promise<Lease>;
  /** Unspent permits of the window that started at `windowStart`, given back for other processes to use. */
  giveBack(bucket: string, windowStart: number, count: number): Promise<void>;
};

/** The leases in Postgres (migration 0029, on the counters of migration 0027), each window timed by the database's clock. */
export function postgresLeases(db: Db, max: number, windowMs: number): LeaseStore {
  return {
    lease: async (bucket, need, extra) => {
      // Named statements: parsed once per connection.
      const row = (await db.query<{ granted: number; window_start: string; reset_ms: string }>({
        name: 'countersign-rate-lease', text: 'SELECT granted, window_start, reset_ms FROM countersign_rate_lease($1, $2, $3, $4, $5)', values: [bucket, windowMs, max, need, extra],
      })).rows[0];
      if (!row) throw new Error('countersign_rate_lease answered no row');
      return { granted: row.granted, windowStart: Number(row.window_start), resetMs: Number(row.reset_ms) };
    },
    giveBack: async (bucket, windowStart, count) => {
      await db.query({ name: 'countersign-rate-return', text: 'SELECT countersign_rate_return($1, $2, $3)', values: [bucket, windowStart, count] });
    },
  };
}

/** Spare permits a process asks for at most per lease (the store grants fewer as the window's permits run out). */
const MAX_SPARES = 32;

type LeasedBucket = {
  /** Permits leased and not spent yet, valid until `expiresAt` (this process's monotonic clock). */
  permits: number;
  windowStart: number;
  expiresAt: number;
  /** Spares to ask for with the next lease: doubles while a client keeps using them. */
  spares: number;
  /** Requests waiting for the lease under way. */
  waiters: Array<(hit: Hit) => void>;
  leasing: boolean;
  lastUsed: number;
};

/**
 * Fixed-window request counters shared by every API process on one database, without a round trip per
 * request: a process leases permits of a bucket's window from Postgres in small blocks (LeaseStore) and spends
 * them from memory. Exact across processes: the store never grants more permits in a window than the limit,
 * a permit is spent at most once, and only before its window ends by this process's clock, which is never
 * later than the database's end (the lease's remaining time is counted from when the lease was asked for).
 * Spares are few (at most MAX_SPARES, a quarter of what the window has left, none from the last quarter of the
 * limit, where every permit costs a round trip as it did before leases), asked for ahead of need while a
 * client keeps sending (the request that leaves them low starts the next lease without waiting for it), and
 * given back once the client has been quiet for `idleMs`, so a client spread over several processes is
 * refused early by at most the spares the others hold for that long. A bucket found exhausted is remembered
 * until its window ends, so a client that keeps knocking costs no further round trip. When Postgres cannot
 * answer, requests are counted in this process's memory instead (`fallback`: the limit then holds per
 * process) and `onError` is told.
 */
export class LeasedRateBuckets {
  private readonly buckets = new Map<string, LeasedBucket>();
  private readonly refusedUntil = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: LeaseStore,
    readonly max: number,
    readonly windowMs: number,
    private readonly fallback: RateBuckets,
    private readonly onError: (err: unknown) => void = () => {},
    private readonly now: () => number = () => performance.now(),
    readonly idleMs = Math.min(1_000, windowMs / 4),
    private readonly maxKeys = 100_000,
  ) {}

  hit(key: string): Hit | Promise<Hit> {
    const t = this.now();
    const until = this.refusedUntil.get(key);
    if (until !== undefined) {
      if (until > t) return { allowed: false, retryAfterMs: until - t };
      this.refusedUntil.delete(key);
    }
    let b = this.buckets.get(key);
    if (b && b.expiresAt <= t) b.permits = 0; // its window ended: what is left of it is void
    if (b && b.permits > 0 && b.waiters.length === 0) {
      b.permits -= 1;
      b.lastUsed = t;
      // Running low: the next block is asked for now, so the client's next request finds it here.
      if (b.permits <= b.spares >> 1) this.pump(key, b);
      return { allowed: true, retryAfterMs: b.expiresAt - t };
    }
    if (!b) {
      b = { permits: 0, windowStart: -1, expiresAt: 0, spares: 1, waiters: [], leasing: false, lastUsed: t };
      this.buckets.set(key, b);
      if (this.buckets.size > this.maxKeys) this.evictOldest();
    }
    const bucket = b;
    bucket.lastUsed = t;
    return new Promise<Hit>((resolve) => {
      bucket.waiters.push(resolve);
      this.pump(key, bucket);
    });
  }

  /** Leases for the bucket's waiters (and its spares), unless a lease is under way: its answer pumps again. */
  private pump(key: string, b: LeasedBucket): void {
    if (b.leasing) return;
    const need = b.waiters.length;
    const spares = b.spares;
    b.leasing = true;
    const sent = this.now();
    this.store.lease(key, need, spares).then((lease) => {
      b.leasing = false;
      const t = this.now();
      if (lease.windowStart !== b.windowStart) {
        b.permits = 0;
        b.windowStart = lease.windowStart;
      }
      b.expiresAt = sent + lease.resetMs;
      b.permits += lease.granted;
      if (lease.granted >= need + spares) b.spares = Math.min(MAX_SPARES, spares * 2);
      if (b.expiresAt <= t) b.permits = 0;
      while (b.permits > 0 && b.waiters.length > 0) {
        b.permits -= 1;
        b.waiters.shift()!({ allowed: true, retryAfterMs: b.expiresAt - t });
      }
      if (b.waiters.length === 0) return;
      if (lease.granted < need && b.expiresAt > t) {
        // The window has nothing left for them: refused, and remembered until it ends.
        const retryAfterMs = b.expiresAt - t;
        this.refusedUntil.set(key, b.expiresAt);
        if (this.refusedUntil.size > MAX_REMEMBERED_REFUSALS) this.refusedUntil.delete(this.refusedUntil.keys().next().value!);
        for (const w of b.waiters.splice(0)) w({ allowed: false, retryAfterMs });
        return;
      }
      // Requests that came in while the lease was under way (or a window that ended on the way): lease again.
      this.pump(key, b);
    }, (err: unknown) => {
      b.leasing = false;
      this.onError(err);
      for (const w of b.waiters.splice(0)) w(this.fallback.hit(key));
    });
  }

  /** Gives back the spares of buckets whose clients have been quiet for idleMs (and forgets those buckets). */
  returnIdle(): Promise<void> {
    const t = this.now();
    const back: Array<Promise<void>> = [];
    for (const [key, b] of this.buckets) {
      if (b.leasing || b.waiters.length > 0 || t - b.lastUsed < this.idleMs) continue;
      this.buckets.delete(key);
      back.push(this.giveBack(key, b, t));
    }
    return Promise.all(back).then(() => undefined);
  }

  private giveBack(key: string, b: LeasedBucket, t: number): Promise<void> {
    const count = b.expiresAt > t ? b.permits : 0;
    b.permits = 0;
    if (count === 0) return Promise.resolve();
    return this.store.giveBack(key, b.windowStart, count).catch((err: unknown) => this.onError(err));
  }

  private evictOldest(): void {
    for (const [key, b] of this.buckets) {
      if (b.leasing || b.waiters.length > 0) continue;
      this.buckets.delete(key);
      void this.giveBack(key, b, this.now());
      return;
    }
  }

  /** Gives back quiet buckets' spares every idleMs; `sweepWindows` also drops ended windows' rows about once a window. */
  start(sweepWindows?: () => Promise<unknown>): void {
    if (this.timer) return;
    let last = this.now();
    this.timer = setInterval(() => {
      void this.returnIdle();
      if (sweepWindows && this.now() - last >= this.windowMs) {
        last = this.now();
        sweepWindows().catch((err: unknown) => this.onError(err));
      }
    }, this.idleMs);
    this.timer.unref();
  }

  /** Stops the timer and gives back every unspent permit. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const t = this.now();
    const back: Array<Promise<void>> = [];
    for (const [key, b] of this.buckets) {
      if (b.leasing || b.waiters.length > 0) continue;
      this.buckets.delete(key);
      back.push(this.giveBack(key, b, t));
    }
    await Promise.all(back);
  }

  get size(): number {
    return this.buckets.size;
  }
}

/**
 * The bucket key of a client address: an IPv4 address (also when written IPv4-mapped) as it is, an IPv6
 * address by its /64, the smallest block a single subscriber is usually given (one host can otherwise pick a
 * new address per request).
 */
export function clientAddressKey(ip: string): string {
  if (!ipaddr.isValid(ip)) return `addr:${ip}`;
  const parsed = ipaddr.process(ip);
  if (parsed.kind() === 'ipv4') return `addr:${parsed.toString()}`;
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16));
  return `addr:${parts.join(':')}::/64`;
}
