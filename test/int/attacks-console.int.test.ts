import { parseApiKey } from '../../services/identity/api-keys.ts';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPrincipal, api, eventually, startTestStack, type TestStack } from './harness.ts';

/**
 * Attacks on the console's sessions: changes without the CSRF token, ended, idle and expired sessions, forged
 * session ids, sessions whose key or member no longer authenticates, one tenant's session reading another's
 * runs, and sign-in abuse. Each prints its count; none may get through.
 */
let stack: TestStack;
let approver: { id: string; key: string };
let bot: { id: string; key: string };
let decision: string;
let decisionB: string;

type Session = { cookie: string; csrf: string; id: string };

async function signIn(key: string): Promise<{ status: number; session: Session | null; body: any }> {
  const res = await fetch(`${stack.url}/v1/console/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ api_key: key }) });
  const body = await res.json() as any;
  const set = res.headers.get('set-cookie') ?? '';
  const id = /cs_session=([^;]+)/.exec(set)?.[1];
  return { status: res.status, body, session: id ? { cookie: `cs_session=${id}`, csrf: body.csrf_token, id } : null };
}

async function send(method: string, route: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${stack.url}${route}`, { method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: parsed };
}

/** What a change that got through would write in tenant A: an answer, a policy, a key (runs write the rest themselves). */
const eventCount = async () => Number((await stack.db.query<{ n: string }>(
  `SELECT (count(*) + (SELECT count(*) FROM api_keys) + (SELECT count(*) FROM console_sessions WHERE ended_at IS NOT NULL))::text AS n FROM events
    WHERE tenant_id = 'default' AND (stream_id NOT LIKE 'run/%' OR type IN ('ApprovalGranted', 'ApprovalRejected'))`,
)).rows[0]!.n);
const hashOf = (id: string) => createHash('sha256').update(id).digest('hex');

beforeAll(async () => {
  stack = await startTestStack();
  approver = await addPrincipal(stack, { name: 'alice', roles: ['approver', 'author'], groups: ['finance'] });
  bot = await addPrincipal(stack, { name: 'pay-bot', kind: 'agent', roles: ['agent'] });
  const d = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'pay-bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 900 } });
  expect(d.body.status).toBe('pending_approval');
  decision = d.body.decision_id;
  // The run writes its first events itself, moments after the API answers.
  await eventually(async () => ((await api({ url: stack.url, key: bot.key }, 'GET', `/v1/decisions/${decision}/events`)).status === 200 ? true : undefined), 30_000, 'the run\'s first events');
  const b = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id: 'tenant-b', name: 'Bravo' });
  const botB = await api({ url: stack.url, key: b.body.admin_api_key }, 'POST', '/v1/principals', { name: 'pay-bot', kind: 'agent', roles: ['agent'], groups: [] });
  const dB = await api({ url: stack.url, key: botB.body.api_key }, 'POST', '/v1/decisions', { agent: { id: 'pay-bot' }, action: { tool: 'search_tool' } });
  decisionB = dB.body.decision_id;
  expect(decisionB).toMatch(/^dec_/);
});

afterAll(async () => {
  await stack?.stop();
});

describe('console session attacks', () => {
  it('a session works like its key: reads, and changes with the CSRF token', async () => {
    const { status, session, body } = await signIn(approver.key);
    expect(status).toBe(201);
    expect(body.principal).toMatchObject({ id: approver.id, tenant_id: 'default' });
    expect(JSON.stringify(body)).not.toContain(approver.key);
    const me = await send('GET', '/v1/me', { cookie: session!.cookie });
    expect(me.body).toMatchObject({ id: approver.id });
    expect(me.body.id).toBe(approver.id);
    // Only the id's hash is stored; neither the id nor the key is in the table.
    const rows = await stack.db.query<{ row: string }>('SELECT row_to_json(s)::text AS row FROM console_sessions s');
    expect(rows.rows.map((r) => r.row).join('\n')).toContain(hashOf(session!.id));
    expect(rows.rows.map((r) => r.row).join('\n')).not.toContain(session!.id);
    expect(rows.rows.map((r) => r.row).join('\n')).not.toContain(parseApiKey(approver.key)!.secret);
    const timeline = await send('GET', `/v1/decisions/${decision}/events`, { cookie: session!.cookie });
    expect(timeline.body).toMatchObject({ decision_id: decision });
    expect(timeline.body.items[0].type).toBe('DecisionRequested');
    expect(timeline.body.chain_linked).toBe(true);
  });

  it('changes without the session CSRF token are refused and write nothing', async () => {
    const a = (await signIn(approver.key)).session!;
    const other = (await signIn(approver.key)).session!;
    const before = await eventCount();
    const tokens: Array<[string, Record<string, string>]> = [
      ['none', {}], ['empty', { 'x-csrf-token': '' }], ['random', { 'x-csrf-token': randomBytes(32).toString('base64url') }],
      ["another session's", { 'x-csrf-token': other.csrf }], ['the session id itself', { 'x-csrf-token': a.id }],
      ['as a query parameter only', {}],
    ];
    const changes: Array<[string, string, unknown]> = [
      ['POST', `/v1/decisions/${decision}/approvals`, { verdict: 'approve' }],
      ['POST', '/v1/policies', { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'csrf-x', name: 'x' }, rules: [] }],
      ['DELETE', '/v1/console/session', undefined],
      ['POST', '/v1/api-keys', { principal_id: approver.id, name: 'stolen' }],
    ];
    let attempts = 0;
    let through = 0;
    for (const [method, route, body] of changes) {
      for (const [name, headers] of tokens) {
        attempts++;
        const path = name === 'as a query parameter only' ? `${route}?x-csrf-token=${a.csrf}` : route;
        const res = await send(method, path, { cookie: a.cookie, ...headers }, body);
        if (res.status !== 403 || res.body.code !== 'forbidden') through++;
      }
    }
    console.log(`attack console-csrf: ${attempts} attempts, ${through} got through`);
    expect(through).toBe(0);
    expect(await eventCount()).toBe(before);
    // The session still works, with its token, after all that.
    expect((await send('GET', '/v1/me', { cookie: a.cookie })).status).toBe(200);
  });

  it('ended, idle, expired and forged sessions, and sessions whose key or member stopped authenticating, are refused', async () => {
    const cases: Array<[string, () => Promise<Session>]> = [
      ['signed out', async () => {
        const s = (await signIn(approver.key)).session!;
        expect((await send('DELETE', '/v1/console/session', { cookie: s.cookie, 'x-csrf-token': s.csrf })).status).toBe(204);
        return s;
      }],
      ['idle past the limit', async () => {
        const s = (await signIn(approver.key)).session!;
        await stack.db.query(`UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes' WHERE id_hash = $1`, [hashOf(s.id)]);
        return s;
      }],
      ['past its absolute expiry', async () => {
        const s = (await signIn(approver.key)).session!;
        await stack.db.query(`UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE id_hash = $1`, [hashOf(s.id)]);
        return s;
      }],
      ['its key revoked', async () => {
        const k = await api(stack, 'POST', '/v1/api-keys', { principal_id: approver.id, name: 'to revoke' });
        const s = (await signIn(k.body.api_key)).session!;
        expect((await api(stack, 'DELETE', `/v1/api-keys/${k.body.id}`)).status).toBe(200);
        return s;
      }],
      ['its key expired', async () => {
        const k = await api(stack, 'POST', '/v1/api-keys', { principal_id: approver.id, name: 'to expire', expires_at: new Date(Date.now() + 60_000).toISOString() });
        const s = (await signIn(k.body.api_key)).session!;
        await stack.db.query(`UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1`, [k.body.id]);
        return s;
      }],
      ['its member disabled', async () => {
        const p = await addPrincipal(stack, { name: 'carol', roles: ['approver'], groups: ['finance'] });
        const s = (await signIn(p.key)).session!;
        expect((await api(stack, 'PATCH', `/v1/principals/${p.id}`, { disabled: true })).status).toBe(200);
        return s;
      }],
      ['a random id', async () => ({ id: `css_${randomBytes(32).toString('base64url')}`, cookie: `cs_session=css_${randomBytes(32).toString('base64url')}`, csrf: '' })],
      ['the stored hash as the id', async () => {
        const s = (await signIn(approver.key)).session!;
        return { ...s, cookie: `cs_session=${hashOf(s.id)}` };
      }],
      ['a malformed id', async () => ({ id: 'x', cookie: "cs_session=css_'; DROP TABLE console_sessions; --", csrf: '' })],
    ];
    let attempts = 0;
    let through = 0;
    for (const [, make] of cases) {
      const s = await make();
      for (const [method, route, body] of [['GET', '/v1/me', undefined], ['GET', `/v1/decisions/${decision}/events`, undefined], ['POST', `/v1/decisions/${decision}/approvals`, { verdict: 'reject' }]] as const) {
        attempts++;
        const res = await send(method, route, { cookie: s.cookie, 'x-csrf-token': s.csrf }, body);
        if (res.status !== 401) through++;
      }
    }
    console.log(`attack console-dead-sessions: ${attempts} attempts, ${through} got through`);
    expect(through).toBe(0);
  });

  it("a session of one tenant never reads another tenant's run", async () => {
    const s = (await signIn(approver.key)).session!;
    let attempts = 0;
    let through = 0;
    for (const route of [`/v1/decisions/${decisionB}`, `/v1/decisions/${decisionB}/events`, `/v1/decisions/${decisionB}/receipt`]) {
      attempts++;
      const res = await send('GET', route, { cookie: s.cookie });
      if (res.status !== 404) through++;
    }
    attempts++;
    const answer = await send('POST', `/v1/decisions/${decisionB}/approvals`, { cookie: s.cookie, 'x-csrf-token': s.csrf }, { verdict: 'approve' });
    if (answer.status !== 404) through++;
    console.log(`attack console-cross-tenant: ${attempts} attempts, ${through} got through`);
    expect(through).toBe(0);
  });

  it("an agent's events route shows only its own runs", async () => {
    const other = await addPrincipal(stack, { name: 'other-bot', kind: 'agent', roles: ['agent'] });
    const res = await api({ url: stack.url, key: other.key }, 'GET', `/v1/decisions/${decision}/events`);
    const own = await api({ url: stack.url, key: bot.key }, 'GET', `/v1/decisions/${decision}/events`);
    console.log(`attack console-events-other-agent: 1 attempts, ${res.status === 404 ? 0 : 1} got through`);
    expect(res.status).toBe(404);
    expect(own.status).toBe(200);
  });

  it('sign-in refuses bad keys, agent keys, forms and oversized bodies, and opens nothing', async () => {
    const before = Number((await stack.db.query<{ n: string }>('SELECT count(*)::text AS n FROM console_sessions')).rows[0]!.n);
    const tries: Array<[string, () => Promise<number>, number]> = [
      ['wrong secret', async () => (await signIn(`${approver.key.slice(0, -4)}AAAA`)).status, 401],
      ['garbage', async () => (await signIn('not-a-key')).status, 401],
      ['agent key', async () => (await signIn(bot.key)).status, 403],
      ['form post (cross-site form)', async () => (await fetch(`${stack.url}/v1/console/sessions`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `api_key=${encodeURIComponent(approver.key)}` })).status, 415],
      // A cross-site form can send text/plain without a preflight: it arrives as a string, never as the object.
      ['text/plain post', async () => (await fetch(`${stack.url}/v1/console/sessions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ api_key: approver.key }) })).status, 400],
      ['oversized', async () => (await fetch(`${stack.url}/v1/console/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ api_key: 'x'.repeat(3 * 1024 * 1024) }) })).status, 413],
      ['unknown field', async () => (await send('POST', '/v1/console/sessions', {}, { api_key: approver.key, roles: ['admin'] })).status, 400],
    ];
    let through = 0;
    for (const [name, attempt, expected] of tries) {
      const status = await attempt();
      if (status !== expected) {
        through++;
        console.log(`sign-in ${name}: ${status}, expected ${expected}`);
      }
    }
    console.log(`attack console-sign-in: ${tries.length} attempts, ${through} got through`);
    expect(through).toBe(0);
    expect(Number((await stack.db.query<{ n: string }>('SELECT count(*)::text AS n FROM console_sessions')).rows[0]!.n)).toBe(before);
  });
});
