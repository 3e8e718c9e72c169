import type { Db } from '../events/db.ts';
import { NotifiedCache } from '../events/listener.ts';
import type { LogFn } from '../logger.ts';
import { lookupKey, type KeyLookup, type KeyRecord } from './principals.ts';

/** Every API key change and every principal change, from the triggers of migration 0012. */
export const KEY_CHANNEL = 'api_key_changed';

/**
 * API key records by public prefix, so a request does not cost a Postgres transaction to authenticate.
 * Kept only while the LISTEN connection is up (NotifiedCache): a key's change (`key:<prefix>`) drops that
 * key, and a principal's change (`*`: roles, groups, disabling) drops every key, since those are rare. The
 * API that writes a change also drops at once, so a key revoked through it fails on the very next request;
 * another API process learns it when the notification lands (milliseconds after the commit).
 * Unknown prefixes are never kept: the cache holds at most one entry per existing key.
 */
export class ApiKeyCache {
  private readonly cache: NotifiedCache<KeyRecord | null>;

  /** `load`: how a key missing here is read (Postgres; a test may count the reads). */
  constructor(url: string, log: LogFn, private readonly load: KeyLookup = lookupKey) {
    this.cache = new NotifiedCache({ url, channel: KEY_CHANNEL, log, drops: (payload, prefix) => payload === '*' || payload === `key:${prefix}`, keeps: (row) => row !== null });
  }

  start(): Promise<void> {
    return this.cache.start();
  }

  stop(): Promise<void> {
    return this.cache.stop();
  }

  /** Drops every cached key: called after this process changes a key or a principal. */
  invalidate(): void {
    this.cache.drop(() => true);
  }

  /** Whether the key of this prefix is held (or being loaded) here: checking it then costs no Postgres transaction. */
  knows(prefix: string): boolean {
    return this.cache.has(prefix);
  }

  /** A KeyLookup for `authenticate`. */
  readonly lookup: KeyLookup = (db: Db, prefix: string) => this.cache.get(prefix, () => this.load(db, prefix));
}

/** A principal's roles and groups as the database has them (null: no such principal in that tenant). */
export type PrincipalAccess = { roles: string[]; groups: string[]; disabled: boolean };

/**
 * Principals' roles and groups by (tenant, id), for the worker's check of every answer sent into a run
 * (activities/authorize.ts): without it each answer costs a Postgres transaction inside the run's workflow
 * task. Same channel and rules as ApiKeyCache: any principal change (`*`) drops everything, a lost LISTEN
 * connection drops everything and caches nothing until it is back, an unknown principal is never kept.
 */
export class PrincipalCache {
  private readonly cache: NotifiedCache<PrincipalAccess | null>;

  constructor(url: string, log: LogFn) {
    this.cache = new NotifiedCache({ url, channel: KEY_CHANNEL, log, drops: (payload) => payload === '*', keeps: (found) => found !== null });
  }

  start(): Promise<void> {
    return this.cache.start();
  }

  stop(): Promise<void> {
    return this.cache.stop();
  }

  get(tenantId: string, principalId: string, load: () => Promise<PrincipalAccess | null>): Promise<PrincipalAccess | null> {
    return this.cache.get(`${tenantId}\u0000${principalId}`, load);
  }
}
