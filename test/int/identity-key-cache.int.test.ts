import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeAuthorize } from '../../activities/authorize.ts';
import { attest, loadAttestationSecret, newNonce } from '../../services/decisions/attestation.ts';
import type { Db } from '../../services/events/db.ts';
import { parseApiKey } from '../../services/identity/api-keys.ts';
import { ApiKeyCache, PrincipalCache } from '../../services/identity/key-cache.ts';
import { authenticate } from '../../services/identity/principals.ts';
import { eventually } from './harness.ts';
import { startInProcessApi, type InProcessApi } from './in-process-api.ts';

/**
 * The API caches API keys for the request path (services/identity/key-cache.ts). A cached key must never
 * outlive a change: revoked, expired, its member disabled or its roles changed, through this API (at once)
 * or by any other writer (when the notification of migration 0012 lands).
 */
let api: InProcessApi;
let db: Db;
let inspect: Db;
let admin: string;

beforeAll(async () => {
  api = await startInProcessApi();
  ({ db, inspect, boot: admin } = api);
}, 60_000);
afterAll(async () => {
  await api?.stop();
});

const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, key: string, body?: unknown) => api.call(method, url, key, body);

const member = async (roles: string[]) => {
  const res = await call('POST', '/v1/principals', admin, { name: `m-${randomBytes(3).toString('hex')}`, kind: 'person', roles, groups: [] });
  expect(res.status).toBe(201);
  return { id: res.body.id as string, key: res.body.api_key as string, prefix: parseApiKey(res.body.api_key)!.prefix };
};

/** A pool that counts the transactions it opens: a cached key opens none. */
function counting(pool: Db): { db: Db; opened: () => number } {
  let n = 0;
  const proxy = new Proxy(pool, {
    get(target, prop) {
      // A read either checks out a client (a transaction) or goes through the pool's own query (one round trip).
      if (prop === 'connect' || prop === 'query') return (...args: unknown[]) => { n += 1; return (Reflect.get(target, prop) as (...a: unknown[]) => unknown).apply(target, args); };
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { db: proxy, opened: () => n };
}

describe('the API key cache', () => {
  it('reads a key from Postgres once while it listens, never keeps an unknown prefix, and checks the secret every time', async () => {
    const m = await member(['agent']);
    const cache = new ApiKeyCache(api.url, () => {});
    await cache.start();
    try {
      const { db: counted, opened } = counting(db);
      for (let i = 0; i < 5; i++) expect(await authenticate(counted, m.key, new Date(), cache.lookup)).toMatchObject({ id: m.id });
      expect(opened()).toBe(1);
      // The right prefix with a wrong secret: the cached record does not let it through.
      const forged = `${m.key.slice(0, -4)}${m.key.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
      expect(await authenticate(counted, forged, new Date(), cache.lookup)).toBeNull();
      expect(opened()).toBe(1);
      // An unknown prefix is looked up every time: guessing prefixes cannot fill the cache.
      const unknown = m.key.replace(m.prefix, 'zzzzzzzzzzzz'.slice(0, m.prefix.length));
      expect(await authenticate(counted, unknown, new Date(), cache.lookup)).toBeNull();
      expect(await authenticate(counted, unknown, new Date(), cache.lookup)).toBeNull();
      expect(opened()).toBe(3);
      // The expiry is checked against the request's clock, not the time the record was cached.
      expect(await authenticate(counted, m.key, new Date(Date.now() + 1000), cache.lookup)).not.toBeNull();
    } finally {
      await cache.stop();
    }
  });

  it('a key revoked through this API fails on its very next request', async () => {
    const m = await member(['agent']);
    expect((await call('GET', '/v1/me', m.key)).status).toBe(200);
    expect((await call('GET', '/v1/me', m.key)).status).toBe(200); // now cached
    const keys = await call('GET', `/v1/api-keys?principal_id=${m.id}`, admin);
    const id = keys.body.items.find((k: { prefix: string }) => k.prefix === m.prefix).id;
    expect((await call('DELETE', `/v1/api-keys/${id}`, admin)).status).toBe(200);
    expect((await call('GET', '/v1/me', m.key)).status).toBe(401);
  });

  it('a member disabled or demoted through this API is refused on the next request', async () => {
    const m = await member(['agent', 'auditor']);
    expect((await call('GET', '/v1/principals', m.key)).status).toBe(200);
    expect((await call('PATCH', `/v1/principals/${m.id}`, admin, { roles: ['agent'] })).status).toBe(200);
    expect((await call('GET', '/v1/principals', m.key)).status).toBe(403);
    expect((await call('PATCH', `/v1/principals/${m.id}`, admin, { disabled: true })).status).toBe(200);
    expect((await call('GET', '/v1/me', m.key)).status).toBe(401);
  });

  // Another API process, the CLI or an operator writes the change: only the notification tells this API.
  it('a key revoked, a member disabled or demoted by another writer stops counting once the notification lands', async () => {
    const revoked = await member(['agent']);
    const disabled = await member(['agent']);
    const demoted = await member(['agent', 'auditor']);
    for (const m of [revoked, disabled]) expect((await call('GET', '/v1/me', m.key)).status).toBe(200);
    expect((await call('GET', '/v1/principals', demoted.key)).status).toBe(200);

    await inspect.query('UPDATE api_keys SET revoked_at = now() WHERE prefix = $1', [revoked.prefix]);
    await inspect.query('UPDATE principals SET disabled_at = now() WHERE id = $1', [disabled.id]);
    await inspect.query(`UPDATE principals SET roles = '{agent}' WHERE id = $1`, [demoted.id]);

    await eventually(async () => ((await call('GET', '/v1/me', revoked.key)).status === 401 ? true : undefined), 10_000, 'the revoked key to be refused');
    await eventually(async () => ((await call('GET', '/v1/me', disabled.key)).status === 401 ? true : undefined), 10_000, 'the disabled member to be refused');
    await eventually(async () => ((await call('GET', '/v1/principals', demoted.key)).status === 403 ? true : undefined), 10_000, 'the demoted member to be refused');
  });

  it("the worker's answer check reads a principal once, and sees another writer's change of roles and groups", async () => {
    const m = await member(['approver']);
    await inspect.query(`UPDATE principals SET groups = '{ops}' WHERE id = $1`, [m.id]);
    const secret = loadAttestationSecret(path.join(tmpdir(), `cs-keycache-secret-${randomBytes(4).toString('hex')}`));
    const answer = (approver: string) => attest(secret, {
      kind: 'answer' as const, decision_id: 'dec_keycache', nonce: newNonce(), round: 1, verdict: 'approve' as const, channel: 'api' as const, approver_id: approver, tenant_id: 'default',
      args_digest: null, snapshot_hash: `sha256:${'0'.repeat(64)}`,
    }, new Date());
    const cache = new PrincipalCache(api.url, () => {});
    await cache.start();
    try {
      const { db: counted, opened } = counting(db);
      const authorize = makeAuthorize(counted, () => secret, cache);
      for (let i = 0; i < 3; i++) expect(await authorize(answer(m.id))).toEqual({ ok: true, principal_id: m.id, roles: ['approver'], groups: ['ops'] });
      // One read of the principal (kept after), and one of the delegations in force per answer: those are read
      // every time, as a delegation can start, end or be revoked between two answers.
      expect(opened()).toBe(1 + 3);
      // Unknown principals are read every time, never kept.
      expect(await authorize(answer('prn_nobody'))).toMatchObject({ ok: false });
      expect(await authorize(answer('prn_nobody'))).toMatchObject({ ok: false });
      expect(opened()).toBe(1 + 3 + 2);
      await inspect.query(`UPDATE principals SET groups = '{}', roles = '{agent}' WHERE id = $1`, [m.id]);
      await eventually(async () => {
        const r = await authorize(answer(m.id));
        return r.ok && r.groups.length === 0 && !r.roles.includes('approver') ? true : undefined;
      }, 10_000, 'the changed roles and groups to be seen');
      await inspect.query('UPDATE principals SET disabled_at = now() WHERE id = $1', [m.id]);
      await eventually(async () => ((await authorize(answer(m.id))).ok === false ? true : undefined), 10_000, 'the disabled approver to be refused');
      expect(await authorize(answer(m.id))).toEqual({ ok: false, reason: 'the principal is disabled' });
    } finally {
      await cache.stop();
    }
  });
});
