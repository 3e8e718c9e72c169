import { parseApiKey } from '../../services/identity/api-keys.ts';
import { compileErrors, validate } from '@readme/openapi-parser';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../services/events/db.ts';
import { eventually } from './harness.ts';
import { startInProcessApi, type InProcessApi } from './in-process-api.ts';

/**
 * The API surface in process (Fastify inject) on its own database: OpenAPI, rate limits, metrics, and the
 * identity endpoints' own behaviour (keys shown once, revocation, expiry, disabled members, pagination).
 */
let api: InProcessApi;
let inspect: Db;
let app: FastifyInstance;
let boot: string;
let call: InProcessApi['call'];
const RATE = 40;

beforeAll(async () => {
  api = await startInProcessApi({ COUNTERSIGN_RATE_LIMIT: String(RATE) });
  ({ inspect, app, boot, call } = api);
}, 60_000);
afterAll(async () => {
  await api?.stop();
});

describe('API surface', () => {
  it('serves an OpenAPI 3.1 document that validates, with every /v1 route documented, and a reference page', async () => {
    const doc = (await call('GET', '/openapi.json', null)).body;
    expect(doc.openapi).toBe('3.1.0');
    const result = await validate(structuredClone(doc));
    expect(result.valid ? '' : compileErrors(result)).toBe('');
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`));
    const v1 = app.routeTable.filter((r) => r.url.startsWith('/v1/')).map((r) => `${r.method} ${r.url}`);
    expect(v1.filter((r) => !documented.includes(r))).toEqual([]);
    const page = await call('GET', '/docs', null);
    expect(page.status).toBe(200);
    expect(String(page.body)).toMatch(/swagger/i);
  });

  it('keys are shown once, stored hashed; revoked, expired and disabled ones stop working at once', async () => {
    const created = await call('POST', '/v1/principals', boot, { name: 'dana', kind: 'person', roles: ['approver'], groups: ['finance'], email: 'Dana@Example.com' });
    expect(created.status).toBe(201);
    const { id, api_key: key, key_id: keyId } = created.body as { id: string; api_key: string; key_id: string };
    const stored = (await inspect.query<{ row: string }>('SELECT row_to_json(k)::text AS row FROM api_keys k WHERE id = $1', [keyId])).rows[0]!.row;
    expect(stored).not.toContain(parseApiKey(key)!.secret);
    const listed = JSON.stringify((await call('GET', `/v1/api-keys?principal_id=${id}`, boot)).body);
    expect(listed).not.toContain(parseApiKey(key)!.secret);
    expect((await call('GET', '/v1/me', key)).status).toBe(200);

    // Their own second key, then revoke the first: the first is refused, the second still works.
    const second = (await call('POST', '/v1/api-keys', key, { name: 'laptop' })).body as { api_key: string; id: string };
    expect((await call('DELETE', `/v1/api-keys/${keyId}`, key)).body).toMatchObject({ status: 'revoked' });
    expect((await call('GET', '/v1/me', key)).status).toBe(401);
    expect((await call('GET', '/v1/me', second.api_key)).status).toBe(200);

    // Written by another writer (not this API): the cached key is dropped when the notification lands
    // (migration 0012, milliseconds); test/int/identity-key-cache.int.test.ts covers that path.
    await inspect.query(`UPDATE api_keys SET expires_at = now() WHERE id = $1`, [second.id]);
    await eventually(async () => ((await call('GET', '/v1/me', second.api_key)).status === 401 ? true : undefined), 10_000, 'the expired key to be refused');
    expect((await call('GET', `/v1/api-keys?principal_id=${id}`, boot)).body.items.map((k: { status: string }) => k.status).sort()).toEqual(['expired', 'revoked']);

    const third = (await call('POST', '/v1/api-keys', boot, { principal_id: id })).body as { api_key: string };
    expect((await call('PATCH', `/v1/principals/${id}`, boot, { disabled: true })).body).toMatchObject({ disabled: true });
    expect((await call('GET', '/v1/me', third.api_key)).status).toBe(401);
    expect((await call('PATCH', `/v1/principals/${id}`, boot, { disabled: false })).body).toMatchObject({ disabled: false });
    expect((await call('GET', '/v1/me', third.api_key)).status).toBe(200);
  });

  it('emails and Slack ids name one person per tenant; agents have neither; an admin cannot lock themself out', async () => {
    const dup = await call('POST', '/v1/principals', boot, { name: 'dana 2', kind: 'person', roles: ['approver'], email: 'dana@example.com' });
    expect(dup.status).toBe(409);
    expect(dup.body.errors).toEqual([{ path: 'email', message: 'already used in this tenant' }]);
    const agent = await call('POST', '/v1/principals', boot, { name: 'bot', kind: 'agent', roles: ['agent'], slack_user_id: 'U123ABC' });
    expect(agent.status).toBe(400);
    const me = (await call('GET', '/v1/me', boot)).body as { id: string };
    expect((await call('PATCH', `/v1/principals/${me.id}`, boot, { roles: ['auditor'] })).status).toBe(409);
  });

  it('pages with cursors: every member exactly once, in order', async () => {
    for (let i = 0; i < 7; i++) expect((await call('POST', '/v1/principals', boot, { name: `page-${i}`, kind: 'agent', roles: ['agent'] })).status).toBe(201);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { body: { items: Array<{ id: string }>; next_cursor: string | null } } = await call('GET', `/v1/principals?limit=3${cursor ? `&cursor=${cursor}` : ''}`, boot);
      seen.push(...res.body.items.map((p) => p.id));
      cursor = res.body.next_cursor;
      pages++;
    } while (cursor);
    const all = (await inspect.query<{ id: string }>("SELECT id FROM principals WHERE tenant_id = 'default' ORDER BY created_at, id")).rows.map((r) => r.id);
    expect(seen).toEqual(all);
    expect(pages).toBe(Math.ceil(all.length / 3));
  });

  it('tenant settings: a platform admin creates a tenant; its admin changes its default decision', async () => {
    const t = await call('POST', '/v1/tenants', boot, { id: 'acme', name: 'Acme', admin: { name: 'erin', email: 'erin@acme.test' } });
    expect(t.status).toBe(201);
    const adminKey = t.body.admin_api_key as string;
    expect((await call('POST', '/v1/tenants', boot, { id: 'acme', name: 'again' })).status).toBe(409);
    expect((await call('POST', '/v1/tenants', boot, { id: 'platform', name: 'nope' })).status).toBe(400);
    expect((await call('POST', '/v1/tenants', adminKey, { id: 'evil', name: 'nope' })).status).toBe(403);
    expect((await call('PATCH', '/v1/tenants/acme', adminKey, { default_decision: 'REQUIRE_APPROVAL' })).body).toMatchObject({ default_decision: 'REQUIRE_APPROVAL' });
    expect((await call('GET', '/v1/tenants/acme', adminKey)).body).toMatchObject({ id: 'acme', name: 'Acme', default_decision: 'REQUIRE_APPROVAL' });
    expect((await call('GET', '/v1/tenants/default', adminKey)).status).toBe(404);
    const ids = (await call('GET', '/v1/tenants', boot)).body.items.map((x: { id: string }) => x.id);
    expect(ids).toEqual(expect.arrayContaining(['default', 'acme']));
  });

  it('rate limits per key: 429 problem+json with Retry-After; another key and health checks are unaffected', async () => {
    const other = ((await call('POST', '/v1/principals', boot, { name: 'rl', kind: 'agent', roles: ['agent'] })).body as { api_key: string }).api_key;
    let limited: Awaited<ReturnType<typeof call>> | null = null;
    expect((await call('GET', '/v1/me', other)).status).toBe(200);
    // Part of the window gone: the message still names the window's length (it once named the time left).
    await new Promise((r) => setTimeout(r, 1_600));
    for (let i = 0; i < RATE + 5 && !limited; i++) {
      const res = await call('GET', '/v1/me', other);
      if (res.status === 429) limited = res;
    }
    expect(limited).not.toBeNull();
    expect(limited!.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(limited!.body).toMatchObject({ code: 'rate_limited', status: 429 });
    expect(limited!.body.detail).toMatch(new RegExp(`^more than ${RATE} requests in 60 s; retry after `));
    expect(Number(limited!.headers['retry-after'])).toBeGreaterThan(0);
    expect((await call('GET', '/healthz', null)).status).toBe(200);
    const fresh = ((await call('POST', '/v1/principals', boot, { name: 'rl2', kind: 'agent', roles: ['agent'] })).body as { api_key: string }).api_key;
    expect((await call('GET', '/v1/me', fresh)).status).toBe(200);
  });

  it('/metrics in Prometheus format: requests by route pattern and status, never ids or keys', async () => {
    const res = await call('GET', '/metrics', null);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/plain/);
    const text = String(res.body);
    expect(text).toMatch(/countersign_http_requests_total\{method="GET",route="\/v1\/me",status="200"\} \d+/);
    expect(text).toMatch(/countersign_http_requests_total\{method="PATCH",route="\/v1\/tenants\/:id",status="200"\}/);
    expect(text).toMatch(/countersign_http_request_duration_seconds_bucket/);
    expect(text).not.toMatch(/prn_|cs_[a-z0-9]{12}_|acme/);
  });
});
