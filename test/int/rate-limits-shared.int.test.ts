import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAttestationSecret } from '../../services/decisions/attestation.ts';
import { createInspectionPool, type Db } from '../../services/events/db.ts';
import { bootstrapPrincipalId, ensureBootstrap } from '../../services/identity/bootstrap.ts';
import { createPrincipal } from '../../services/identity/members.ts';
import { loadOrCreateKeyring } from '../../services/receipts/keyring.ts';
import { api, createTestDatabase, freePort, stackEnv, startProcess, type AppProcess } from './harness.ts';

/**
 * The limit both processes are given (large enough that the processes lease spares, migration 0029); the
 * window is long enough that no test straddles two.
 */
const RATE = 24;

/**
 * Two API processes on one database (no worker: nothing here starts a run). Rate limits are shared through
 * Postgres (migrations 0027, 0029: each process leases permits in small blocks and spends them from memory),
 * so the limit holds across both: the (N+1)th request is refused whichever process gets it, and a burst
 * spread over both gets no more than the limit through.
 */
describe('rate limits shared by every API process', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: Db;
  let apis: AppProcess[] = [];
  const urls: string[] = [];
  const agent = async (name: string) => {
    const p = await createPrincipal(db, 'default', { name, kind: 'agent', roles: ['agent'], groups: [], key_name: name, acts_for: [] }, { principalId: bootstrapPrincipalId('default'), platformAdmin: true });
    return p.api_key;
  };

  beforeAll(async () => {
    const base = stackEnv();
    database = await createTestDatabase();
    const suffix = randomBytes(4).toString('hex');
    const keysDir = path.join(base.COUNTERSIGN_DATA_DIR, 'keys');
    await loadOrCreateKeyring(keysDir);
    loadAttestationSecret(keysDir);
    db = createInspectionPool(database.url, 2);
    const keyFile = path.join(base.COUNTERSIGN_DATA_DIR, `test-key-${suffix}`);
    const boot = await ensureBootstrap(db, { tenantId: 'default', keyFile });
    if (boot.token === null) throw new Error(boot.refused);
    const env = {
      DATABASE_URL: database.url, DATABASE_ADMIN_URL: database.adminUrl, TEMPORAL_ADDRESS: base.TEMPORAL_ADDRESS, KAFKA_BROKERS: base.KAFKA_BROKERS,
      COUNTERSIGN_DATA_DIR: base.COUNTERSIGN_DATA_DIR, COUNTERSIGN_KEYS_DIR: keysDir, COUNTERSIGN_KAFKA_TOPIC: `countersign.test.${suffix}`,
      COUNTERSIGN_TASK_QUEUE: `countersign-test-${suffix}`, COUNTERSIGN_BOOTSTRAP_KEY_FILE: keyFile, COUNTERSIGN_LOG_LEVEL: 'info',
      COUNTERSIGN_RATE_LIMIT: String(RATE), COUNTERSIGN_RATE_WINDOW_MS: '3600000', COUNTERSIGN_TRUST_PROXY: '1',
    };
    const ports = [await freePort(), await freePort()];
    const started = await Promise.allSettled(ports.map((port, i) => startProcess(`api-${i + 1}`, 'services/api/main.ts', { ...env, COUNTERSIGN_PORT: String(port) }, /api listening/)));
    apis = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const refused = started.find((s) => s.status === 'rejected');
    if (refused) throw refused.reason;
    urls.push(...ports.map((p) => `http://127.0.0.1:${p}`));
  }, 120_000);
  afterAll(async () => {
    await Promise.all(apis.map((a) => a.stop()));
    await db?.end();
    await database?.drop();
  });

  const me = (i: number, key: string) => api({ url: urls[i % 2]!, key }, 'GET', '/v1/me').then((r) => r.status);

  it('made-up keys from one address, spread over both APIs, get no more than the limit of lookups', async () => {
    // Before the key lookup, requests count against the client address: one address of its own here (the
    // proxy's X-Forwarded-For is trusted, one hop), so the principals' requests from 127.0.0.1 share nothing with it.
    const attempts = RATE * 6;
    const madeUp = () => `cs_${randomBytes(6).toString('hex')}_${randomBytes(32).toString('base64url')}`;
    const statuses = await Promise.all(Array.from({ length: attempts }, (_, i) => api({ url: urls[i % 2]!, key: madeUp() }, 'GET', '/v1/me', undefined, { 'x-forwarded-for': '198.51.100.77' }).then((r) => r.status)));
    const looked = statuses.filter((s) => s === 401).length;
    expect(statuses.filter((s) => s !== 401 && s !== 429)).toEqual([]);
    const through = Math.max(0, looked - RATE);
    console.log(`attack rate-limit-random-keys-over-two-apis: ${attempts - RATE} attempts, ${through} got through (${looked} key lookups for a limit of ${RATE})`);
    expect(through).toBe(0);
  });

  it.each([0, 1])('the (N+1)th request of a principal is refused by API %i, the first N were served by both', async (last) => {
    const key = await agent(`rate-bot-${last}`);
    const served: number[] = [];
    for (let i = 0; i < RATE; i++) served.push(await me(i, key));
    expect(served).toEqual(Array(RATE).fill(200));
    const res = await api({ url: urls[last]!, key }, 'GET', '/v1/me');
    expect(res.status).toBe(429);
    expect(res.body).toMatchObject({ code: 'rate_limited' });
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    // And the other process refuses it too (from its memory of the refusal, or from Postgres).
    expect(await me(last + 1, key)).toBe(429);
  });

  it('a burst of one principal spread over both APIs gets no more than the limit through', async () => {
    const key = await agent('burst-bot');
    const attempts = RATE * 6;
    const statuses = await Promise.all(Array.from({ length: attempts }, (_, i) => me(i, key)));
    const ok = statuses.filter((s) => s === 200).length;
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    const through = Math.max(0, ok - RATE);
    console.log(`attack rate-limit-burst-over-two-apis: ${attempts - RATE} attempts, ${through} got through (${ok} served of ${attempts} for a limit of ${RATE})`);
    expect(through).toBe(0);
    expect(ok).toBe(RATE);
  });

  it('waves of concurrent requests of one principal over both APIs: never more than the limit, and the limit is served', async () => {
    const key = await agent('wave-bot');
    const statuses: number[] = [];
    for (let wave = 0; wave < 12; wave++) {
      statuses.push(...(await Promise.all(Array.from({ length: 5 }, (_, i) => me(wave + i, key)))));
    }
    const ok = statuses.filter((s) => s === 200).length;
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    console.log(`attack rate-limit-waves-over-two-apis: ${statuses.length - RATE} attempts, ${Math.max(0, ok - RATE)} got through (${ok} served of ${statuses.length} for a limit of ${RATE})`);
    expect(ok).toBeLessThanOrEqual(RATE);
    // Spares held by one process may turn a few of the last requests away early; never most of them.
    expect(ok).toBeGreaterThanOrEqual(RATE - 4);
  });

});
