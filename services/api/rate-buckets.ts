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

/**
 * Fixed-window request counters shared by every API process on one database (migration 0027): each hit is one
 * upsert in an UNLOGGED table (countersign_rate_hit), each window timed by the database's clock. A bucket found
 * over its limit is remembered here until its window ends, so a client that keeps knocking costs no further
 * round trip: the shared count only grows within a window, so once over it stays over. When Postgres cannot
 * answer, the hit is counted in this process's memory instead (`fallback`: the limit then holds per process,
 * as it did before counters were shared) and `onError` is told.
 */
export class SharedRateBuckets {
  private readonly refusedUntil = new Map<string, number>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Db,
    readonly max: number,
    readonly windowMs: number,
    private readonly fallback: RateBuckets,
    private readonly onError: (err: unknown) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  async hit(key: string): Promise<Hit> {
    const t = this.now();
    const until = this.refusedUntil.get(key);
    if (until !== undefined) {
      if (until > t) return { allowed: false, retryAfterMs: until - t };
      this.refusedUntil.delete(key);
    }
    let row: { hits: number; reset_ms: string } | undefined;
    try {
      // A named statement: parsed once per connection.
      row = (await this.db.query<{ hits: number; reset_ms: string }>({ name: 'countersign-rate-hit', text: 'SELECT hits, reset_ms FROM countersign_rate_hit($1, $2)', values: [key, this.windowMs] })).rows[0];
    } catch (err) {
      this.onError(err);
      return this.fallback.hit(key);
    }
    if (!row) return this.fallback.hit(key);
    const retryAfterMs = Math.max(0, Number(row.reset_ms));
    const allowed = row.hits <= this.max;
    if (!allowed) {
      this.refusedUntil.set(key, t + retryAfterMs);
      if (this.refusedUntil.size > MAX_REMEMBERED_REFUSALS) this.refusedUntil.delete(this.refusedUntil.keys().next().value!);
    }
    return { allowed, retryAfterMs };
  }

  /** Drops ended windows' rows about once a window (any process may; a second sweep finds nothing). */
  startSweeping(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      this.db.query('SELECT countersign_rate_sweep($1)', [this.windowMs]).catch((err: unknown) => this.onError(err));
    }, this.windowMs);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
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
