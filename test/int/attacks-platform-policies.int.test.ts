import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventData } from '../../schemas/events.ts';
import { appendToStream } from '../../services/events/append-to-stream.ts';
import { PLATFORM_SCOPE, policyStreamId } from '../../services/events/stream-ids.ts';
import { Replay } from '../../services/audit/replay.ts';
import { api, eventually, startTestStack, type TestStack } from './harness.ts';

/**
 * Attacks on platform policies: tenants (their admins, authors, agents) authoring or changing them, tenant
 * documents forging the platform scope, a tenant reaching the platform's settings or reviews, a signed platform
 * activation replayed into a tenant's stream or import, and oversized input. Each prints how many attempts it
 * made and how many got through; none may.
 */
let stack: TestStack;
const RUN = randomBytes(3).toString('hex');
type Who = { url: string; key: string };
const as = (key: string): Who => ({ url: stack.url, key });
const report = (name: string, attempts: number, through: string[]) => {
  console.log(`attack ${name}: ${attempts} attempts, ${through.length} got through`);
  expect(through).toEqual([]);
};
let platform: Who;
const A = `pa-a-${RUN}`;
const B = `pa-b-${RUN}`;
const keys: Record<string, Who> = {};
const CAP = `cap-${RUN}`;

const doc = (id: string, level: string, rules: unknown[] = [{ name: 'big-refunds', match: { tool: 'payment_tool', operation: 'Refund' }, condition: 'amount > 10000', decision: 'DENY' }]) =>
  ({ apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: id }, scope: { level }, rules });

/** Every platform stream event, as a fingerprint: an attack that got through would change it. */
async function platformLog(): Promise<string> {
  const r = await stack.db.query<{ f: string }>(`SELECT count(*)::text || '/' || coalesce(max(position)::text, '') AS f FROM events WHERE tenant_id = $1`, [PLATFORM_SCOPE]);
  return r.rows[0]!.f;
}

const ask = (who: string, tool: string, amount: number) => api(keys[`${who}-bot`]!, 'POST', '/v1/decisions', { agent: { id: `bot-${who}` }, action: { tool, operation: 'Refund' }, context: { amount } });

beforeAll(async () => {
  stack = await startTestStack();
  platform = as(stack.bootstrapKey);
  for (const [name, id] of [['a', A], ['b', B]] as const) {
    const t = await api(platform, 'POST', '/v1/tenants', { id, name: id });
    expect(t.status, JSON.stringify(t.body)).toBe(201);
    keys[`${name}-admin`] = as(t.body.admin_api_key);
    for (const [role, kind] of [['author', 'person'], ['auditor', 'person'], ['agent', 'agent']] as const) {
      const p = await api(keys[`${name}-admin`]!, 'POST', '/v1/principals', { name: role === 'agent' ? `bot-${name}` : `${role}-${name}`, kind, roles: [role] });
      expect(p.status, JSON.stringify(p.body)).toBe(201);
      keys[`${name}-${role === 'agent' ? 'bot' : role}`] = as(p.body.api_key);
    }
    // Each tenant allows refunds of any size; the platform caps them.
    expect((await api(keys[`${name}-admin`]!, 'POST', '/v1/policies', doc('refunds', 'tenant', [{ name: 'allow-refunds', match: { tool: 'payment_tool' }, decision: 'ALLOW' }]))).status).toBe(201);
    expect((await api(keys[`${name}-admin`]!, 'POST', '/v1/policies/refunds/activate')).status).toBe(200);
  }
  expect((await api(platform, 'POST', '/v1/platform/policies', doc(CAP, 'platform'))).status).toBe(201);
  expect((await api(platform, 'POST', `/v1/platform/policies/${CAP}/activate`)).status).toBe(200);
  await eventually(async () => ((await ask('a', 'payment_tool', 20_000)).body.decision === 'DENY' ? true : undefined), 30_000, 'the cap to apply');
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

describe('attacks on platform policies', () => {
  it('tenant principals (admin, author, auditor, agent) and a default-tenant admin author or change platform policies', async () => {
    const before = await platformLog();
    const callers = ['a-admin', 'a-author', 'a-auditor', 'a-bot', 'b-admin'].map((k) => [k, keys[k]!] as const);
    callers.push(['default-tenant admin (not a platform admin)', as(stack.key)]);
    const routes: Array<[string, string, unknown]> = [
      ['POST', '/v1/platform/policies', doc(`evil-${RUN}`, 'platform')],
      ['PUT', `/v1/platform/policies/${CAP}`, doc(CAP, 'platform', [{ name: 'allow', decision: 'ALLOW' }])],
      ['DELETE', `/v1/platform/policies/${CAP}`, undefined],
      ['POST', `/v1/platform/policies/${CAP}/activate`, undefined],
      ['POST', `/v1/platform/policies/${CAP}/deprecate`, undefined],
      ['POST', `/v1/platform/policies/${CAP}/rollback`, { to_version: 1 }],
      ['POST', `/v1/platform/policies/${CAP}/clone`, undefined],
      ['POST', `/v1/platform/policies/${CAP}/validate`, undefined],
      ['POST', `/v1/platform/policies/${CAP}/activation/approvals`, { verdict: 'approve' }],
      ['POST', '/v1/platform/policies/import', {}],
      ['PATCH', '/v1/platform/settings', { policy_four_eyes: false }],
      ['GET', '/v1/platform/settings', undefined],
      ['GET', '/v1/platform/policies', undefined],
    ];
    const through: string[] = [];
    let attempts = 0;
    for (const [who, key] of callers) {
      for (const [method, route, body] of routes) {
        attempts += 1;
        const r = await api(key, method, route, body);
        if (r.status !== 403 || r.body?.code !== 'forbidden') through.push(`${who} ${method} ${route}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      }
    }
    if ((await platformLog()) !== before) through.push('the platform streams changed');
    if ((await ask('b', 'payment_tool', 20_000)).body.decision !== 'DENY') through.push('the cap stopped applying');
    report('tenant authors platform policy', attempts, through);
  });

  it('tenant documents that forge the platform scope (JSON, YAML, edits, imports, a platform admin on the tenant routes)', async () => {
    const before = await platformLog();
    const a = keys['a-admin']!;
    expect((await api(a, 'POST', '/v1/policies', doc(`mine-${RUN}`, 'tenant'))).status).toBe(201);
    const exported = (await api(a, 'GET', `/v1/policies/${CAP}/export`)).body as Record<string, unknown>;
    const yaml = `apiVersion: countersign/v1\nkind: Policy\nmetadata: { id: yaml-${RUN}, name: y }\nscope: { level: platform }\nrules:\n  - name: allow\n    decision: ALLOW\n`;
    const tries: Array<[string, Who, string, string, unknown, Record<string, string>?]> = [
      ['JSON scope platform', a, 'POST', '/v1/policies', doc(`forge-${RUN}`, 'platform', [{ name: 'allow', decision: 'ALLOW' }])],
      ['YAML scope platform', a, 'POST', '/v1/policies', yaml, { 'content-type': 'application/yaml' }],
      ['scope platform with an agent', a, 'POST', '/v1/policies', { ...doc(`forge2-${RUN}`, 'platform'), scope: { level: 'platform', agent: 'bot-a' } }],
      ['scope Platform (case)', a, 'POST', '/v1/policies', doc(`forge3-${RUN}`, 'Platform')],
      ['draft edited to scope platform', a, 'PUT', `/v1/policies/mine-${RUN}`, doc(`mine-${RUN}`, 'platform', [{ name: 'allow', decision: 'ALLOW' }])],
      ['author: scope platform', keys['a-author']!, 'POST', '/v1/policies', doc(`forge4-${RUN}`, 'platform')],
      ['import of the platform export', a, 'POST', '/v1/policies/import', exported],
      ['import of the platform export renamed', a, 'POST', '/v1/policies/import', { ...exported, policy_id: `renamed-${RUN}`, document: { ...(exported['document'] as object), metadata: { id: `renamed-${RUN}`, name: 'r' } } }],
      ['import of the platform export re-scoped to tenant', a, 'POST', '/v1/policies/import', { ...exported, policy_id: `rescoped-${RUN}`, scope: { level: 'tenant' }, document: { ...doc(`rescoped-${RUN}`, 'tenant') } }],
      ['platform admin on the tenant routes', platform, 'POST', '/v1/policies', doc(`boot-${RUN}`, 'platform')],
    ];
    const through: string[] = [];
    for (const [name, who, method, route, body, headers] of tries) {
      const r = headers
        ? await fetch(`${stack.url}${route}`, { method, headers: { authorization: `Bearer ${who.key}`, ...headers }, body: body as string }).then(async (x) => ({ status: x.status, body: await x.json() as Record<string, unknown> }))
        : await api(who, method, route, body);
      if (r.status < 400 || r.status >= 500) through.push(`${name}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
    }
    // No tenant holds a platform-level version, and nothing of the platform changed.
    const stray = await stack.db.query(`SELECT stream_id FROM events WHERE tenant_id <> $1 AND type IN ('PolicyDrafted', 'PolicyEdited', 'PolicyImported', 'PolicyActivated') AND (data->'document'->'scope'->>'level' = 'platform' OR data->'scope'->>'level' = 'platform')`, [PLATFORM_SCOPE]);
    for (const row of stray.rows) through.push(`a tenant stream holds a platform-level document: ${String(row.stream_id)}`);
    if ((await platformLog()) !== before) through.push('the platform streams changed');
    report('forged platform scope', tries.length, through);
  });

  it('a tenant reaches the platform through another id: reserved tenant ids, the platform settings, reviews, path tricks', async () => {
    const through: string[] = [];
    const a = keys['a-admin']!;
    const tries: Array<[string, Who, string, string, unknown, number[]]> = [
      ['tenant id platform', platform, 'POST', '/v1/tenants', { id: 'platform', name: 'p' }, [400]],
      ['tenant id :platform', platform, 'POST', '/v1/tenants', { id: ':platform', name: 'p' }, [400]],
      ['policy id :platform', a, 'GET', '/v1/policies/%3Aplatform', undefined, [400]],
      ['policy id with a slash', a, 'GET', `/v1/policies/platform%2Fpolicy%2F${CAP}`, undefined, [400, 404]],
      ['stream-like policy id', a, 'POST', '/v1/policies', doc(`platform/policy/${CAP}`, 'tenant'), [400]],
      ['tenant B answers a platform review (tenant route)', keys['b-admin']!, 'POST', `/v1/policies/${CAP}/activation/approvals`, { verdict: 'approve' }, [403]],
      ['tenant B answers a platform review (platform route)', keys['b-admin']!, 'POST', `/v1/platform/policies/${CAP}/activation/approvals`, { verdict: 'approve' }, [403]],
      ["tenant A deprecates B's policy", a, 'POST', '/v1/policies/refunds/deprecate', undefined, [200, 202]],
    ];
    // The last one acts on A's own policy of that id, never B's: B's still applies afterwards.
    for (const [name, who, method, route, body, ok] of tries) {
      const r = await api(who, method, route, body);
      if (!ok.includes(r.status)) through.push(`${name}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
    }
    if ((await ask('b', 'payment_tool', 500)).body.decision !== 'ALLOW') through.push("tenant B's own policy stopped applying");
    const readB = await stack.db.query(`SELECT 1 FROM events WHERE tenant_id = $1 AND type = 'PolicyDeprecated'`, [B]);
    if (readB.rowCount) through.push("tenant B's policy was deprecated");
    report('wrong tenant reaches the platform', tries.length, through);
  });

  it("a platform activation replayed into a tenant's stream never decides, and replay names it", async () => {
    // A platform policy that ALLOWs lookup_tool everywhere, later deprecated: tenant A copies its signed activation.
    const id = `lookup-${RUN}`;
    expect((await api(platform, 'POST', '/v1/platform/policies', doc(id, 'platform', [{ name: 'allow-lookup', match: { tool: 'lookup_tool' }, decision: 'ALLOW' }]))).status).toBe(201);
    expect((await api(platform, 'POST', `/v1/platform/policies/${id}/activate`)).status).toBe(200);
    await eventually(async () => ((await ask('a', 'lookup_tool', 1)).body.decision === 'ALLOW' ? true : undefined), 30_000, 'the platform ALLOW');
    expect((await api(platform, 'POST', `/v1/platform/policies/${id}/deprecate`)).status).toBe(200);
    await eventually(async () => ((await ask('a', 'lookup_tool', 1)).body.decision === 'DENY' ? true : undefined), 30_000, 'the deprecation');
    const activation = (await stack.db.query<{ data: EventData<'PolicyActivated'> }>(`SELECT data FROM events WHERE stream_id = $1 AND type = 'PolicyActivated'`, [policyStreamId(PLATFORM_SCOPE, id)])).rows[0]!.data;

    const through: string[] = [];
    let attempts = 0;
    // Into A's stream of the same id, and of another id (as someone who can write the log would).
    for (const target of [id, `copy-${RUN}`]) {
      attempts += 1;
      const streamId = policyStreamId(A, target);
      await appendToStream(stack.db, { streamId, tenantId: A, expectedVersion: 0, recordedAt: new Date(), events: [{ type: 'PolicyActivated', eventId: `${streamId}/copied`, data: activation }] });
      await new Promise((r) => setTimeout(r, 500)); // the cache drop after the append
      const r = await ask('a', 'lookup_tool', 1);
      if (r.body.decision !== 'DENY') through.push(`copied into ${streamId}: ${r.body.decision} by ${r.body.matched_rule}`);
    }
    // Through the API: importing the platform's signed export into the tenant.
    attempts += 1;
    const exported = (await api(keys['a-admin']!, 'GET', `/v1/policies/${id}/export`)).body;
    const imp = await api(keys['a-admin']!, 'POST', '/v1/policies/import', exported);
    if (imp.status < 400 || imp.status >= 500) through.push(`import: ${imp.status} ${JSON.stringify(imp.body).slice(0, 200)}`);
    // The auditor sees both copies for what they are.
    const rows = await stack.db.query<{ e: string }>(
      `SELECT json_build_object('position', position::text, 'stream_id', stream_id, 'stream_version', stream_version, 'event_id', event_id,
         'type', type, 'schema_version', schema_version, 'tenant_id', tenant_id, 'data', data, 'metadata', metadata,
         'recorded_at', to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'prev_hash', prev_hash, 'hash', hash)::text AS e
         FROM events ORDER BY position`,
    );
    const replay = new Replay({ keys: null, parallel: false });
    for (const row of rows.rows) replay.add({ value: row.e, where: 'postgres' });
    const rep = replay.finish();
    for (const target of [id, `copy-${RUN}`]) {
      attempts += 1;
      if (!rep.divergences.some((d) => d.stream_id === policyStreamId(A, target) && /says scope platform/.test(d.problem))) through.push(`replay did not name the copy in ${policyStreamId(A, target)}`);
    }
    report('platform activation replayed into a tenant', attempts, through);
  }, 120_000);

  it('oversized platform input is refused before it is read, and writes nothing', async () => {
    const before = await platformLog();
    const huge = JSON.stringify({ ...doc(`huge-${RUN}`, 'platform'), description: 'x'.repeat(2 * 1024 * 1024) });
    const send = (key: string, method: string, route: string, body: string) => fetch(`${stack.url}${route}`, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body }).then((r) => r.status);
    const wide = JSON.stringify(Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i])));
    const tries: Array<[string, () => Promise<number>, number[]]> = [
      ['2 MiB platform document', () => send(platform.key, 'POST', '/v1/platform/policies', huge), [413]],
      ['2 MiB platform draft replacement', () => send(platform.key, 'PUT', `/v1/platform/policies/${CAP}`, huge), [413]],
      ['2 MiB from a tenant', () => send(keys['a-admin']!.key, 'POST', '/v1/platform/policies', huge), [413]],
      ['100k keys', () => send(platform.key, 'POST', '/v1/platform/policies', wide), [413]],
      ['2 MiB settings', () => send(platform.key, 'PATCH', '/v1/platform/settings', JSON.stringify({ policy_activation_timeout: 'x'.repeat(2 * 1024 * 1024) })), [413]],
      ['long settings value', () => send(platform.key, 'PATCH', '/v1/platform/settings', JSON.stringify({ policy_activation_timeout: `${'9'.repeat(5000)}h` })), [400]],
      ['200-character policy id', () => send(platform.key, 'POST', '/v1/platform/policies', JSON.stringify(doc('p'.repeat(200), 'platform'))), [400]],
      ['5000-character review comment', () => send(platform.key, 'POST', `/v1/platform/policies/${CAP}/activation/approvals`, JSON.stringify({ verdict: 'approve', comment: 'c'.repeat(5000) })), [400]],
    ];
    const through: string[] = [];
    for (const [name, run, ok] of tries) {
      const status = await run();
      if (!ok.includes(status)) through.push(`${name}: ${status}`);
    }
    if ((await platformLog()) !== before) through.push('the platform streams changed');
    report('oversized platform input', tries.length, through);
  });
});
