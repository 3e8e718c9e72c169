import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPrincipal, api, eventually, startTestStack, type TestStack } from './harness.ts';

/**
 * Attacks on the console's one-time sign-in links (`countersign login --web`) and on the tenant audit replay
 * route: replayed, expired, forged and cross-tenant links, links minted by the wrong holder, and replays run
 * by the wrong role, for another tenant, or too often. Each prints its count; none may get through.
 */
let stack: TestStack;
let alice: { id: string; key: string };
let auditor: { id: string; key: string };
let bot: { id: string; key: string };
let tenantB: { adminKey: string; decision: string };
let decisionA: string;

const hashOf = (s: string) => createHash('sha256').update(s).digest('hex');

async function mint(key: string, body: unknown = {}, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return api({ url: stack.url, key }, 'POST', '/v1/console/links', body, headers);
}

async function redeem(token: string): Promise<{ status: number; body: any; cookie: string | null }> {
  const res = await fetch(`${stack.url}/v1/console/links/redeem`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) });
  const body = await res.json() as any;
  const id = /cs_session=([^;]+)/.exec(res.headers.get('set-cookie') ?? '')?.[1];
  return { status: res.status, body, cookie: id ? `cs_session=${id}` : null };
}

const sessionCount = async () => Number((await stack.db.query<{ n: string }>('SELECT count(*)::text AS n FROM console_sessions')).rows[0]!.n);

beforeAll(async () => {
  stack = await startTestStack();
  alice = await addPrincipal(stack, { name: 'alice', roles: ['approver'], groups: ['finance'] });
  auditor = await addPrincipal(stack, { name: 'audrey', roles: ['auditor'] });
  bot = await addPrincipal(stack, { name: 'pay-bot', kind: 'agent', roles: ['agent'] });
  const d = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'pay-bot' }, action: { tool: 'search_tool' } });
  decisionA = d.body.decision_id;
  await eventually(async () => ((await api({ url: stack.url, key: bot.key }, 'GET', `/v1/decisions/${decisionA}/events`)).status === 200 ? true : undefined), 30_000, "the run's first events");
  const b = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id: 'tenant-b', name: 'Bravo' });
  const botB = await api({ url: stack.url, key: b.body.admin_api_key }, 'POST', '/v1/principals', { name: 'pay-bot', kind: 'agent', roles: ['agent'], groups: [] });
  const dB = await api({ url: stack.url, key: botB.body.api_key }, 'POST', '/v1/decisions', { agent: { id: 'pay-bot' }, action: { tool: 'search_tool' } });
  tenantB = { adminKey: b.body.admin_api_key, decision: dB.body.decision_id };
  expect(tenantB.decision).toMatch(/^dec_/);
});

afterAll(async () => {
  await stack?.stop();
});

describe('console sign-in links', () => {
  it('a link opens one session for the key\'s own person; only its hash is stored', async () => {
    const link = await mint(alice.key);
    expect(link.status).toBe(201);
    expect(link.body.path).toBe(`/sign-in#link=${link.body.token}`);
    const rows = (await stack.db.query<{ row: string }>('SELECT row_to_json(l)::text AS row FROM console_links l')).rows.map((r) => r.row).join('\n');
    expect(rows).toContain(hashOf(link.body.token));
    expect(rows).not.toContain(link.body.token);
    const s = await redeem(link.body.token);
    expect(s.status).toBe(201);
    expect(s.body.principal).toMatchObject({ id: alice.id, tenant_id: 'default', roles: ['approver'] });
    const me = await fetch(`${stack.url}/v1/me`, { headers: { cookie: s.cookie! } });
    expect(((await me.json()) as { id: string }).id).toBe(alice.id);
  });

  it('replayed, expired and forged links open nothing', async () => {
    const before = await sessionCount();
    let attempts = 0;
    let through = 0;
    const tryToken = async (token: string) => {
      attempts++;
      const r = await redeem(token);
      if (r.status !== 401 || r.cookie) through++;
    };
    // Replayed: a spent link, again and again.
    const spent = (await mint(alice.key)).body.token as string;
    expect((await redeem(spent)).status).toBe(201);
    const afterFirst = await sessionCount();
    for (let i = 0; i < 5; i++) await tryToken(spent);
    // Concurrent redemptions of one fresh link: exactly one wins.
    const raced = (await mint(alice.key)).body.token as string;
    const race = await Promise.all(Array.from({ length: 8 }, () => redeem(raced)));
    attempts += race.length - 1;
    through += race.filter((r) => r.status === 201).length - 1;
    // Expired: past its lifetime, and spent by the failed try (a later fix of the clock does not revive it).
    const old = (await mint(alice.key)).body.token as string;
    await stack.db.query(`UPDATE console_links SET expires_at = now() - interval '1 second' WHERE id_hash = $1`, [hashOf(old)]);
    await tryToken(old);
    await stack.db.query(`UPDATE console_links SET expires_at = now() + interval '5 minutes' WHERE id_hash = $1`, [hashOf(old)]);
    await tryToken(old);
    // Its key revoked, or its member disabled, before use.
    const k = await api(stack, 'POST', '/v1/api-keys', { principal_id: alice.id, name: 'to revoke' });
    const revoked = (await mint(k.body.api_key)).body.token as string;
    expect((await api(stack, 'DELETE', `/v1/api-keys/${k.body.id}`)).status).toBe(200);
    await tryToken(revoked);
    const carol = await addPrincipal(stack, { name: 'carol', roles: ['approver'] });
    const disabled = (await mint(carol.key)).body.token as string;
    expect((await api(stack, 'PATCH', `/v1/principals/${carol.id}`, { disabled: true })).status).toBe(200);
    await tryToken(disabled);
    // Forged: random, one character changed, the stored hash, the session id form, malformed, injection.
    const fresh = (await mint(alice.key)).body.token as string;
    const flipped = `${fresh.slice(0, -1)}${fresh.endsWith('A') ? 'B' : 'A'}`;
    for (const t of [`csl_${randomBytes(32).toString('base64url')}`, flipped, hashOf(fresh), `css_${fresh.slice(4)}`, 'csl_', "csl_'; DELETE FROM console_links; --", fresh.toUpperCase(), ` ${fresh}`]) await tryToken(t);
    console.log(`attack console-link-replayed-expired-forged: ${attempts} attempts, ${through} got through`);
    expect(through).toBe(0);
    // The only sessions opened were the two legitimate redemptions (spent, raced).
    expect(await sessionCount()).toBe(before + 2);
    expect(afterFirst).toBe(before + 1);
    // The untouched fresh link still works once.
    expect((await redeem(fresh)).status).toBe(201);
  });

  it('links are bound to their tenant and principal: no minting for someone else, no session crossing tenants', async () => {
    let attempts = 0;
    let through = 0;
    // Minting for another principal (of this tenant or another) is not a thing the route takes.
    for (const body of [{ principal_id: alice.id }, { tenant_id: 'default' }, { principal_id: alice.id, tenant_id: 'default' }]) {
      attempts++;
      const r = await mint(tenantB.adminKey, body);
      if (r.status !== 400) through++;
    }
    // Tenant B's own link signs in B's admin, in B: A's runs stay out of reach.
    const linkB = await mint(tenantB.adminKey);
    expect(linkB.status).toBe(201);
    const sB = await redeem(linkB.body.token);
    expect(sB.body.principal.tenant_id).toBe('tenant-b');
    for (const route of [`/v1/decisions/${decisionA}`, `/v1/decisions/${decisionA}/events`]) {
      attempts++;
      const r = await fetch(`${stack.url}${route}`, { headers: { cookie: sB.cookie! } });
      if (r.status !== 404) through++;
    }
    // A link's row moved to another tenant (a forged row) does not authenticate: the member is not of that tenant.
    const moved = (await mint(alice.key)).body.token as string;
    attempts++;
    const mv = await stack.db.query(`UPDATE console_links SET tenant_id = 'tenant-b' WHERE id_hash = $1`, [hashOf(moved)]).then(() => 'moved', () => 'refused');
    if (mv === 'moved' && (await redeem(moved)).status !== 401) through++;
    // An agent's key, and a console session (which would outlive its expiry by minting), mint nothing.
    attempts++;
    if ((await mint(bot.key)).status !== 403) through++;
    const sA = await redeem((await mint(alice.key)).body.token);
    const viaSession = await fetch(`${stack.url}/v1/console/links`, { method: 'POST', headers: { cookie: sA.cookie!, 'x-csrf-token': sA.body.csrf_token, 'content-type': 'application/json' }, body: '{}' });
    attempts++;
    if (viaSession.status !== 403) through++;
    // Cross-site shapes of redemption (a form or text/plain) are not parsed as the token.
    const t = (await mint(alice.key)).body.token as string;
    for (const [type, body] of [['application/x-www-form-urlencoded', `token=${t}`], ['text/plain', JSON.stringify({ token: t })]] as const) {
      attempts++;
      const r = await fetch(`${stack.url}/v1/console/links/redeem`, { method: 'POST', headers: { 'content-type': type }, body });
      if (r.status < 400 || r.headers.get('set-cookie')) through++;
    }
    console.log(`attack console-link-cross-tenant: ${attempts} attempts, ${through} got through`);
    expect(through).toBe(0);
  });
});

describe('tenant audit replay route', () => {
  it('only admins and auditors of the tenant run and read it, once per interval, for their own tenant only', async () => {
    let attempts = 0;
    let through = 0;
    for (const key of [alice.key, bot.key, 'cs_zzzzzzzzzzzz_' + 'A'.repeat(43)]) {
      for (const [method, route] of [['POST', '/v1/audit/replays'], ['GET', '/v1/audit/replays/latest']] as const) {
        attempts++;
        const r = await api({ url: stack.url, key }, method, route, method === 'POST' ? {} : undefined);
        if (r.status !== 403 && r.status !== 401) through++;
      }
    }
    const before = Number((await stack.db.query<{ n: string }>('SELECT count(*)::text AS n FROM audit_replays')).rows[0]!.n);
    expect(before).toBe(0);
    // Another tenant's name in the body is not taken.
    attempts++;
    if ((await api({ url: stack.url, key: tenantB.adminKey }, 'POST', '/v1/audit/replays', { tenant_id: 'default' })).status !== 400) through++;

    const run = await api({ url: stack.url, key: auditor.key }, 'POST', '/v1/audit/replays', {});
    expect(run.status).toBe(201);
    expect(run.body).toMatchObject({ tenant_id: 'default', started_by: auditor.id, ok: true, signatures_checked: true, divergence_count: 0 });
    expect(run.body.runs).toBeGreaterThanOrEqual(1);
    // Tenant B sees none of A's replays, and its own replay covers only its own log.
    attempts++;
    const latestB = await api({ url: stack.url, key: tenantB.adminKey }, 'GET', '/v1/audit/replays/latest');
    if (latestB.status !== 200 || latestB.body.replay !== null) through++;
    const runB = await api({ url: stack.url, key: tenantB.adminKey }, 'POST', '/v1/audit/replays', {});
    expect(runB.status).toBe(201);
    expect(runB.body.tenant_id).toBe('tenant-b');
    expect(runB.body.events).toBeLessThan(run.body.events);
    expect((await api({ url: stack.url, key: stack.bootstrapKey }, 'GET', '/v1/audit/replays/latest')).body.replay.id).toBe(run.body.id);
    // Within the interval, the tenant gets no second replay, by any of its admins or auditors.
    for (const key of [auditor.key, stack.bootstrapKey, stack.key, auditor.key]) {
      attempts++;
      const again = await api({ url: stack.url, key }, 'POST', '/v1/audit/replays', {});
      if (again.status !== 429) through++;
      else expect(Number(again.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    console.log(`attack audit-replay-route: ${attempts} attempts, ${through} got through`);
    expect(through).toBe(0);
    expect(Number((await stack.db.query<{ n: string }>('SELECT count(*)::text AS n FROM audit_replays')).rows[0]!.n)).toBe(2);
  });
});
