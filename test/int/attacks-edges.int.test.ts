import { Client, Connection } from '@temporalio/client';
import { randomBytes, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { SMTPServer } from 'smtp-server';
import { smtpCapture, unqp } from './smtp-capture.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../services/api/server.ts';
import type { Resolver } from '../../services/callbacks/callback-target.ts';
import { slackSignature } from '../../services/channels/slack-signature.ts';
import { loadConfig } from '../../services/config.ts';
import { ActivePolicies } from '../../services/decisions/active-policies.ts';
import { createInspectionPool, createPool, type Db } from '../../services/events/db.ts';
import { ensureBootstrap } from '../../services/identity/bootstrap.ts';
import { ApiKeyCache } from '../../services/identity/key-cache.ts';
import { lookupKey } from '../../services/identity/principals.ts';
import { activateYaml, addPrincipal, api, createTestDatabase, eventually, stackEnv, startTestStack, type TestStack } from './harness.ts';

/**
 * The network edges, attacked: callback URLs that point inside our network, floods of made-up keys, a victim's
 * key prefix presented by someone else, forged Slack and email requests, and secrets in the API's log.
 * The API runs in process (Fastify inject, each request from the client address the test names) on its own
 * database, with a key lookup that counts its Postgres reads; the log test runs the whole stack.
 */
const RATE = 20;
const SLACK_SECRET = 'edges-signing-secret';

let app: FastifyInstance;
let db: Db;
let inspect: Db;
let boot: string;
let lookups = 0;
let keys: ApiKeyCache;
let drop: () => Promise<void>;
// Callback hosts the test names resolve here, never through DNS.
const resolver: Resolver = async (host) => {
  const table: Record<string, string[]> = { 'private.hook.test': ['10.0.0.5'], 'mixed.hook.test': ['93.184.216.34', '169.254.169.254'], 'mapped.hook.test': ['::ffff:127.0.0.1'] };
  if (!table[host]) throw Object.assign(new Error(`no such host ${host}`), { code: 'ENOTFOUND' });
  return table[host].map((address) => ({ address }));
};

type Sent = { status: number; headers: Record<string, unknown>; body: any };
const send = async (o: { method?: 'GET' | 'POST'; url: string; key?: string | null; from?: string; body?: unknown; headers?: Record<string, string> }): Promise<Sent> => {
  const res = await app.inject({
    method: o.method ?? 'GET', url: o.url, remoteAddress: o.from ?? '127.0.0.1',
    headers: { ...(o.key ? { authorization: `Bearer ${o.key}` } : {}), ...o.headers },
    ...(o.body !== undefined ? { payload: o.body as string } : {}),
  });
  return { status: res.statusCode, headers: res.headers, body: res.headers['content-type']?.toString().includes('json') ? res.json() : res.body };
};
const randomKey = () => `cs_${randomBytes(6).toString('hex')}_${randomBytes(32).toString('base64url')}`;
const createPrincipal = async (name: string, kind: 'agent' | 'person', roles: string[]) => {
  const res = await send({ method: 'POST', url: '/v1/principals', key: boot, body: { name, kind, roles, groups: [] } });
  expect(res.status).toBe(201);
  return { id: res.body.id as string, key: res.body.api_key as string };
};

beforeAll(async () => {
  const database = await createTestDatabase();
  drop = database.drop;
  db = createPool(database.url, 4);
  inspect = createInspectionPool(database.url, 2);
  boot = (await ensureBootstrap(db, { tenantId: 'default', keyFile: path.join(tmpdir(), `cs-edges-${randomBytes(4).toString('hex')}`) })).token!;
  const config = loadConfig({ ...stackEnv(), DATABASE_URL: database.url, COUNTERSIGN_LOG_LEVEL: 'silent', COUNTERSIGN_RATE_LIMIT: String(RATE), COUNTERSIGN_SLACK_SIGNING_SECRET: SLACK_SECRET });
  keys = new ApiKeyCache(database.url, () => {}, (d, prefix) => {
    lookups++;
    return lookupKey(d, prefix);
  });
  await keys.start();
  const temporal = new Client({ connection: Connection.lazy({ address: config.TEMPORAL_ADDRESS }) });
  app = await buildServer({ config, db, temporal, policies: new ActivePolicies(db, config.DATABASE_URL, () => {}), keys, callbackResolver: resolver });
  await app.ready();
}, 60_000);
afterAll(async () => {
  await app?.close();
  await keys?.stop();
  await db?.end();
  await inspect?.end();
  await drop?.();
});

describe('callback URLs that point inside our network', () => {
  it('refuses every form at the API with a 422 naming callback_url, and starts nothing', async () => {
    // Two agents, so the per-principal rate limit is not what refuses them.
    const bots = [await createPrincipal('ssrf-bot', 'agent', ['agent']), await createPrincipal('ssrf-bot-2', 'agent', ['agent'])];
    const forms = [
      'http://[::ffff:127.0.0.1]:5433/', 'http://[::ffff:a9fe:a9fe]/latest/meta-data', 'http://[::ffff:10.0.0.1]/', 'http://[::127.0.0.1]/',
      'http://[64:ff9b::127.0.0.1]/', 'http://[64:ff9b::a9fe:a9fe]/', 'http://0177.0.0.1:5433/', 'http://0x7f000001:5433/', 'http://2130706433:5433/',
      'http://127.1/', 'http://0.0.0.0:8080/', 'http://[::]:8080/', 'http://[::1]/', 'http://169.254.169.254/latest/meta-data', 'http://[fe80::1]/',
      'http://[fd00::1]/', 'http://[fc00::1]/', 'http://100.64.0.1/', 'http://224.0.0.1/', 'http://[ff02::1]/', 'http://10.1.2.3/', 'http://192.168.1.1/',
      'http://172.16.0.1/', 'http://localhost:5433/', 'http://private.hook.test/', 'http://mixed.hook.test/', 'http://mapped.hook.test/', 'http://nowhere.hook.test/',
    ];
    const before = (await inspect.query('SELECT count(*)::int AS n FROM events')).rows[0].n as number;
    let through = 0;
    for (const [i, url] of forms.entries()) {
      const bot = bots[i % 2]!;
      const res = await send({ method: 'POST', url: '/v1/decisions', key: bot.key, body: { agent: { id: i % 2 ? 'ssrf-bot-2' : 'ssrf-bot' }, action: { tool: 'http_tool', operation: 'Get' }, callback_url: url, idempotency_key: randomUUID() } });
      if (res.status !== 422) through++;
      expect({ url, status: res.status, path: res.body?.errors?.[0]?.path }).toEqual({ url, status: 422, path: 'callback_url' });
    }
    expect((await inspect.query('SELECT count(*)::int AS n FROM events')).rows[0].n).toBe(before);
    console.log(`attack callback-ssrf-at-api: ${forms.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  });
});

describe('rate limits counted after authentication', () => {
  it('a flood of made-up keys from one address gets 429 after the limit, and Postgres sees at most the limit of lookups', async () => {
    const attempts = RATE * 5;
    const start = lookups;
    const statuses: number[] = [];
    // X-Forwarded-For is not trusted (COUNTERSIGN_TRUST_PROXY is off): changing it changes nothing.
    for (let i = 0; i < attempts; i++) statuses.push((await send({ url: '/v1/me', key: randomKey(), from: '198.51.100.7', headers: { 'x-forwarded-for': `203.0.113.${i % 250}` } })).status);
    const reads = lookups - start;
    expect(statuses.slice(0, RATE).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(RATE).every((s) => s === 429)).toBe(true);
    const through = Math.max(0, reads - RATE);
    console.log(`attack random-prefix-flood: ${attempts} attempts, ${through} got through (${reads} key lookups for a limit of ${RATE})`);
    expect(reads).toBeLessThanOrEqual(RATE);
    // Another address is not affected.
    expect((await send({ url: '/v1/me', key: randomKey(), from: '198.51.100.8' })).status).toBe(401);
  });

  it("a victim's key prefix presented by an attacker never fills the victim's bucket", async () => {
    const victim = await createPrincipal('victim-bot', 'agent', ['agent']);
    const [, prefix] = /^cs_([a-z0-9]{12})_/.exec(victim.key)!;
    const forged = `cs_${prefix}_${randomBytes(32).toString('base64url')}`;
    const attempts = RATE * 3;
    const statuses: number[] = [];
    for (let i = 0; i < attempts; i++) statuses.push((await send({ url: '/v1/me', key: forged, from: '198.51.100.20' })).status);
    expect(statuses.filter((s) => s === 200)).toEqual([]);
    // The victim's key is held in memory, so each try costs no lookup; they are still failures of the attacker's address.
    expect(statuses.slice(RATE).every((s) => s === 429)).toBe(true);
    // The right secret is still served, even from the attacker's address (a neighbour behind the same NAT).
    expect((await send({ url: '/v1/me', key: victim.key, from: '198.51.100.20' })).status).toBe(200);
    let refused = 0;
    for (let i = 0; i < RATE - 3; i++) if ((await send({ url: '/v1/me', key: victim.key, from: '192.0.2.10' })).status !== 200) refused++;
    console.log(`attack victim-bucket-fill: ${attempts} attempts, ${refused} got through (victim requests refused)`);
    expect(refused).toBe(0);
  });

  it("one principal's limit holds across all of its keys", async () => {
    const bot = await createPrincipal('many-keys-bot', 'agent', ['agent']);
    const extra: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await send({ method: 'POST', url: '/v1/api-keys', key: boot, body: { principal_id: bot.id, name: `k${i}` } });
      expect(res.status).toBe(201);
      extra.push(res.body.api_key as string);
    }
    const all = [bot.key, ...extra];
    const attempts = RATE * 2;
    let served = 0;
    for (let i = 0; i < attempts; i++) if ((await send({ url: '/v1/me', key: all[i % all.length]!, from: `192.0.2.${30 + (i % 4)}` })).status === 200) served++;
    const through = Math.max(0, served - RATE);
    console.log(`attack per-key-buckets: ${attempts} attempts over ${all.length} keys, ${through} got through`);
    expect(served).toBe(RATE);
  });

  it('anonymous requests count by client address (an IPv6 client by its /64)', async () => {
    const attempts = RATE * 2;
    let served = 0;
    for (let i = 0; i < attempts; i++) {
      const res = await send({ url: '/v1/keys', from: `2001:db8:1:2::${(i + 1).toString(16)}` });
      if (res.status !== 429) served++;
    }
    expect(served).toBe(RATE);
    expect((await send({ url: '/v1/keys', from: '2001:db8:1:3::1' })).status).toBe(200);
    expect((await send({ url: '/healthz', from: '2001:db8:1:2::1' })).status).toBe(200);
    console.log(`attack anonymous-address-rotation: ${attempts} attempts, ${Math.max(0, served - RATE)} got through`);
  });
});

describe('forged channel requests write nothing', () => {
  it('refused Slack signatures and unknown email links add no rows', async () => {
    const rows = async () => (await inspect.query('SELECT count(*)::int AS n FROM channel_answer_log')).rows[0].n as number;
    const before = await rows();
    const body = new URLSearchParams({ payload: JSON.stringify({ type: 'block_actions', team: { id: 'T1' }, user: { id: 'U1' }, actions: [{ action_id: 'countersign_approve', value: 'r'.repeat(24) }] }) }).toString();
    const ts = String(Math.floor(Date.now() / 1000));
    const forged: Array<Record<string, string>> = [
      { 'x-slack-request-timestamp': ts, 'x-slack-signature': slackSignature('wrong-secret', ts, body) },
      { 'x-slack-request-timestamp': String(Number(ts) - 3600), 'x-slack-signature': slackSignature(SLACK_SECRET, String(Number(ts) - 3600), body) },
      { 'x-slack-request-timestamp': ts },
      {},
    ];
    const attempts = 40;
    const statuses: number[] = [];
    for (let i = 0; i < attempts; i++) {
      // From many addresses, so the rate limit is not what stops them.
      const from = `198.18.${Math.floor(i / 200)}.${i % 200}`;
      if (i % 2 === 0) {
        statuses.push((await send({ method: 'POST', url: '/v1/slack/interactions', from, body, headers: { 'content-type': 'application/x-www-form-urlencoded', ...forged[i % forged.length] } })).status);
      } else {
        const token = i % 4 === 1 ? randomBytes(32).toString('base64url') : 'short';
        statuses.push((await send({ method: 'POST', url: `/v1/email-approvals/${token}`, from, body: 'csrf=x&verdict=approve', headers: { 'content-type': 'application/x-www-form-urlencoded' } })).status);
      }
    }
    expect(new Set(statuses)).toEqual(new Set([401, 404]));
    const written = (await rows()) - before;
    const metrics = String((await send({ url: '/metrics' })).body);
    expect(metrics).toMatch(/countersign_channel_refusals_total\{channel="slack",reason="signature"\} 20/);
    expect(metrics).toMatch(/countersign_channel_refusals_total\{channel="email",reason="unknown_link"\} 20/);
    console.log(`attack channel-refusal-rows: ${attempts} attempts, ${written} got through (rows written)`);
    expect(written).toBe(0);
  });
});

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: edges-log-test, name: Email approvals whose log is read }
scope: { level: tenant }
rules:
  - name: drop-needs-one
    match: { tool: db_tool, operation: Drop }
    decision: REQUIRE_APPROVAL
    reason: dropping a table needs a DBA
    approval: { approvers: [dba], quorum: 1, timeout: 1h }
`;

describe('secrets never in logs', () => {
  let stack: TestStack;
  let smtp: SMTPServer;
  const mails: Array<{ to: string[]; raw: string }> = [];

  beforeAll(async () => {
    smtp = await smtpCapture(mails);
    stack = await startTestStack({ COUNTERSIGN_SMTP_URL: `smtp://127.0.0.1:${(smtp.server.address() as { port: number }).port}` });
    await activateYaml(stack, POLICY);
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
    await new Promise<void>((r) => smtp?.close(() => r()));
  });

  it("the API's info log of a whole email approval holds no link token and no API key", async () => {
    const agent = await addPrincipal(stack, { name: 'log-bot', kind: 'agent', roles: ['agent'] });
    const dee = await addPrincipal(stack, { name: 'Dee', roles: ['approver'], groups: ['dba'], email: 'dee@example.test' });
    const asked = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'log-bot' }, action: { tool: 'db_tool', operation: 'Drop', args: { table: 'users' } }, idempotency_key: randomUUID() });
    expect(asked.body).toMatchObject({ decision: 'REQUIRE_APPROVAL' });
    const id = asked.body.decision_id as string;
    const link = await eventually(async () => {
      const m = mails.find((x) => x.to.includes('dee@example.test') && unqp(x.raw).includes(id));
      return m ? /https?:\/\/[^\s"<>]+\/v1\/email-approvals\/[A-Za-z0-9_-]{43}/.exec(unqp(m.raw))?.[0] : undefined;
    }, 30_000, 'the approval mail');
    const token = link.split('/').pop()!;
    const page = await fetch(link);
    const html = await page.text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
    await fetch(link, { method: 'HEAD' });
    const answered = await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf, decision_id: id, round: '1', verdict: 'approve' }).toString() });
    expect(answered.status).toBe(200);
    const final = await api({ url: stack.url, key: agent.key }, 'GET', `/v1/decisions/${id}?wait=20`);
    expect(final.body).toMatchObject({ decision: 'ALLOW', status: 'final' });
    // Keys sent in a header, and one sent where it does not belong (in the URL).
    await api({ url: stack.url, key: dee.key }, 'GET', `/v1/me?api_key=${encodeURIComponent(dee.key)}`);
    await fetch(`${stack.url}/v1/email-approvals/${token}/nothing-here`);

    const log = stack.api.output();
    const secrets = [token, csrf, agent.key, dee.key, stack.key];
    const found = secrets.filter((s) => s && log.includes(s));
    const keysInLog = log.match(/cs_[a-z0-9]{12}_[A-Za-z0-9_-]{43}/g) ?? [];
    console.log(`attack secrets-in-log: ${secrets.length} secrets over ${log.split('\n').length} log lines, ${found.length + keysInLog.length} got through`);
    expect(found).toEqual([]);
    expect(keysInLog).toEqual([]);
    // The request log is on (info): the link's requests are in it, with the token replaced.
    expect(log).toMatch(/\/v1\/email-approvals\/\[redacted\]/);
    expect(stack.worker.output().includes(token)).toBe(false);
  }, 120_000);
});
