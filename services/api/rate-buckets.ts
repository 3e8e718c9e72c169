import ipaddr from 'ipaddr.js';

/** What one hit on a bucket found: whether it is within the limit, and when the bucket's window ends. */
export type Hit = { allowed: boolean; retryAfterMs: number };

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
