import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CountersignError } from '../errors.ts';
import type { Db } from '../events/db.ts';
import { parseApiKey } from '../identity/api-keys.ts';
import { clientAddressKey, LeasedRateBuckets, postgresLeases, RateBuckets, type Hit, type RateCounter } from './rate-buckets.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: the route is never rate limited (health checks, metrics). */
    rateLimit?: false;
  }
  interface FastifyRequest {
    /** Set once the request has been counted against its client address's bucket. */
    countedByAddress?: boolean;
  }
}

export type RateLimitOptions = {
  max: number;
  windowMs: number;
  /** Whether this process holds the key of this prefix already (its check costs no Postgres transaction). */
  knowsKey: (prefix: string) => boolean;
  /**
   * Where the counters live: Postgres (every API process on this database shares them), or, without a
   * database, this process's memory.
   */
  db?: Db;
  /** Told when Postgres cannot count a request (it is then counted in this process's memory). */
  onSharedError?: (err: unknown) => void;
};

export type RateLimits = {
  /** Called by the error handler: counts a failed authentication against the client address, and answers the error to send (a 429 past the limit). */
  afterError: (req: FastifyRequest, reply: FastifyReply, err: unknown) => Promise<unknown>;
};

/**
 * Rate limits counted after authentication, shared by every API process through Postgres (N processes behind a
 * load balancer allow the limit once, not N times), each process spending permits it leased in small blocks
 * (rate-buckets.ts LeasedRateBuckets), so most requests cost no round trip:
 * - a verified key counts against its principal (all of the principal's keys share one bucket), so a
 *   victim's key prefix presented by someone else never touches the victim's bucket;
 * - everything else counts against the client address (COUNTERSIGN_TRUST_PROXY says which address that is):
 *   anonymous requests, failed authentications, and, before the lookup, every key this process does not hold
 *   already, so a client that keeps presenting unknown keys costs at most the limit's worth of Postgres
 *   lookups per window. A known key is checked from memory and counted once its outcome is known: its
 *   right secret is served (a neighbour behind the same address cannot lock it out), a wrong one is a
 *   failure of the address, answered 429 instead of 401 past the limit.
 * Routes opt out with `config: { rateLimit: false }`.
 */
export function registerRateLimits(app: FastifyInstance, opts: RateLimitOptions): RateLimits {
  const counter = (name: string): RateCounter => {
    const local = new RateBuckets(opts.max, opts.windowMs);
    if (!opts.db) return local;
    const db = opts.db;
    const shared = new LeasedRateBuckets(postgresLeases(db, opts.max, opts.windowMs), opts.max, opts.windowMs, local, opts.onSharedError);
    // One of the two counters drops ended windows' rows (any process may; a second sweep finds nothing).
    shared.start(name === 'principals' ? () => db.query('SELECT countersign_rate_sweep($1)', [opts.windowMs]) : undefined);
    app.addHook('onClose', async () => shared.stop());
    return shared;
  };
  const principals = counter('principals');
  const addresses = counter('addresses');
  const windowSeconds = Math.round(opts.windowMs / 1000);
  const refusal = (reply: FastifyReply, hit: Hit): CountersignError => {
    const seconds = Math.max(1, Math.ceil(hit.retryAfterMs / 1000));
    void reply.header('retry-after', String(seconds));
    return new CountersignError('rate_limited', `more than ${opts.max} requests in ${windowSeconds} s; retry after ${seconds} s`, { extra: { retry_after_seconds: seconds } });
  };
  const limited = (reply: FastifyReply, hit: Hit): never => {
    throw refusal(reply, hit);
  };
  const exempt = (req: FastifyRequest) => req.routeOptions.config?.rateLimit === false;
  const byAddress = async (req: FastifyRequest, reply: FastifyReply) => {
    req.countedByAddress = true;
    const hit = await addresses.hit(clientAddressKey(req.ip));
    if (!hit.allowed) limited(reply, hit);
  };

  // Before any route hook, so before authentication looks anything up.
  app.addHook('onRequest', async (req, reply) => {
    if (exempt(req)) return;
    const prefix = presentedPrefix(req);
    if (prefix !== null && opts.knowsKey(prefix)) return;
    await byAddress(req, reply);
  });
  // After the route's own onRequest hooks (authentication), before the body is read.
  app.addHook('preParsing', async (req, reply) => {
    if (exempt(req)) return;
    if (req.principal) {
      const hit = await principals.hit(`prn:${req.principal.tenant_id}/${req.principal.id}`);
      if (!hit.allowed) limited(reply, hit);
      return;
    }
    if (!req.countedByAddress) await byAddress(req, reply);
  });
  // A known key with a wrong secret, or a revoked or expired one: a failure of this address, and past the
  // address's limit the answer is 429 rather than 401. (The right secret of a known key is still served.)
  return {
    afterError: async (req, reply, err) => {
      if (exempt(req) || req.countedByAddress || req.principal) return err;
      if (!(err instanceof CountersignError) || err.code !== 'unauthorized') return err;
      req.countedByAddress = true;
      const hit = await addresses.hit(clientAddressKey(req.ip));
      return hit.allowed ? err : refusal(reply, hit);
    },
  };
}

/** The public prefix of a well-formed bearer key, or null. */
function presentedPrefix(req: FastifyRequest): string | null {
  const header = req.headers.authorization;
  return typeof header === 'string' && header.startsWith('Bearer ') ? (parseApiKey(header.slice(7).trim())?.prefix ?? null) : null;
}
