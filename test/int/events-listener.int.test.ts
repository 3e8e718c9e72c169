import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { NotifiedCache, PgListener } from '../../services/events/listener.ts';
import { eventually, stackEnv, withDatabase } from './harness.ts';

// The LISTEN connection behind the policy cache, the tool-catalog cache and the long-poll wake-ups: it must
// come back by itself, after a failed start (Postgres not there yet) and after losing its connection.
describe('PgListener', () => {
  const env = stackEnv();
  const name = `cs_listen_${randomBytes(5).toString('hex')}`;
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>, database?: string): Promise<T> => {
    const c = new pg.Client({ connectionString: database ? withDatabase(env.DATABASE_ADMIN_URL, database) : env.DATABASE_ADMIN_URL });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  const got: string[] = [];
  let lost = 0;
  const listener = new PgListener({
    url: withDatabase(env.DATABASE_ADMIN_URL, name),
    channel: 'cs_listener_test',
    log: () => {},
    onNotify: (payload) => got.push(payload),
    onLost: () => { lost += 1; },
  });
  const notify = (payload: string) => admin((c) => c.query(`SELECT pg_notify('cs_listener_test', $1)`, [payload]), name);

  afterAll(async () => {
    await listener.stop();
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  });

  it('starts while its database is missing, and listens once it is there', async () => {
    await listener.start();
    expect(listener.listening).toBe(false);
    await admin((c) => c.query(`CREATE DATABASE ${name}`));
    await eventually(async () => (listener.listening ? true : undefined), 15_000, 'the listener to connect');
    await notify('first');
    await eventually(async () => (got.includes('first') ? true : undefined), 10_000, 'the first notification');
  });

  it('tells its owner when the connection is lost, then listens again', async () => {
    await admin((c) => c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'`, [name]));
    await eventually(async () => (lost === 1 ? true : undefined), 10_000, 'the loss to be reported');
    await eventually(async () => (listener.listening ? true : undefined), 15_000, 'the listener to reconnect');
    await notify('second');
    await eventually(async () => (got.includes('second') ? true : undefined), 10_000, 'a notification after the reconnect');
    expect(lost).toBe(1);
  });

  it('NotifiedCache: loads once while listening, drops what a notification names, caches nothing while not listening', async () => {
    let loads = 0;
    const load = (v: string) => async () => { loads += 1; return v; };
    const cache = new NotifiedCache<string>({ url: withDatabase(env.DATABASE_ADMIN_URL, name), channel: 'cs_cache_test', log: () => {}, drops: (payload, key) => key === payload });
    const down = new NotifiedCache<string>({ url: withDatabase(env.DATABASE_ADMIN_URL, `${name}_missing`), channel: 'cs_cache_test', log: () => {}, drops: () => true });
    try {
      await cache.start();
      await down.start();
      expect(await cache.get('a', load('a1'))).toBe('a1');
      expect(await cache.get('a', load('a2'))).toBe('a1');
      expect(await cache.get('b', load('b1'))).toBe('b1');
      expect(loads).toBe(2);
      await admin((c) => c.query(`SELECT pg_notify('cs_cache_test', 'a')`), name);
      await eventually(async () => ((await cache.get('a', load('a3'))) === 'a3' ? true : undefined), 10_000, 'a dropped by its notification');
      expect(await cache.get('b', load('b2'))).toBe('b1');
      expect(await down.get('x', load('x1'))).toBe('x1');
      expect(await down.get('x', load('x2'))).toBe('x2');
    } finally {
      await cache.stop();
      await down.stop();
    }
  });

  it('refuses a channel name that would need quoting', () => {
    expect(() => new PgListener({ url: 'postgres://x/y', channel: 'run_final; DROP TABLE events', log: () => {}, onNotify: () => {} })).toThrow(/not a channel name/);
  });
});
