import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../services/config.ts';
import { ActivePolicies } from '../../services/decisions/active-policies.ts';
import { buildServer } from '../../services/api/server.ts';
import { api, eventually, startTestStack, type TestStack } from './harness.ts';

/**
 * The bad-input matrix (issue 5): every route of the Fastify route table has a row; every row is attacked
 * with missing, malformed, unknown, revoked and expired keys, a wrong role, other tenants' ids, malformed
 * JSON, wrong types, 10 MB bodies, deep nesting, 100k keys and unknown fields. Expected each time: the
 * documented status, problem+json naming the problem, nothing written, nothing of tenant B leaked, no 5xx.
 */

type Ids = { tenant: string; principal: string; apiKey: string; decision: string; policy: string; catalogSource: string };
type Row = {
  /** Who may call it: public (no key), any (any valid key), or the roles/platform admin it needs. */
  auth: 'public' | 'any' | 'roles' | 'platform-admin';
  path: (ids: Ids) => string;
  /** A body the route accepts (routes with a body only). */
  body?: (ids: Ids) => Record<string, unknown>;
  /** The same body with a wrong type somewhere, and the field the problem must name. */
  wrongType?: [Record<string, unknown>, string];
  /** Routes with a strict querystring: an unknown parameter is a 400. */
  strictQuery?: boolean;
  /** B's ids make no sense here (nothing to cross). */
  noIds?: boolean;
  /** Expected status when tenant A's admin (not a platform admin) names B's ids. Default 404. */
  crossStatus?: number;
  /** The key that lacks the role (default: an approver-only person). */
  wrongRole?: 'agent' | 'approver';
};

const agentRequest = { agent: { id: 'matrix-bot' }, action: { tool: 'search_tool' } };
const matrixPolicy = (id: string) => ({ apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: id }, rules: [{ name: 'deny-shell', match: { tool: 'shell_exec' }, decision: 'DENY' }] });

const matrixExport = {
  format: 'countersign.policy-export/v1', policy_id: 'matrix-import', version: 1, scope: { level: 'tenant' }, document: matrixPolicy('matrix-import'),
  hash: `sha256:${'0'.repeat(64)}`, exported_at: '2026-01-01T00:00:00.000Z', signing_key_id: 'ed25519:0000000000000000', signature: 'AAAA',
};
const ROWS: Record<string, Row> = {
  'GET /healthz': { auth: 'public', path: () => '/healthz', noIds: true },
  'GET /readyz': { auth: 'public', path: () => '/readyz', noIds: true },
  'GET /metrics': { auth: 'public', path: () => '/metrics', noIds: true },
  'GET /openapi.json': { auth: 'public', path: () => '/openapi.json', noIds: true },
  'GET /docs': { auth: 'public', path: () => '/docs', noIds: true },
  'GET /docs/json': { auth: 'public', path: () => '/docs/json', noIds: true },
  'GET /docs/yaml': { auth: 'public', path: () => '/docs/yaml', noIds: true },
  'GET /docs/static/*': { auth: 'public', path: () => '/docs/static/index.html', noIds: true },
  'GET /docs/static/index.html': { auth: 'public', path: () => '/docs/static/index.html', noIds: true },
  'GET /docs/static/swagger-initializer.js': { auth: 'public', path: () => '/docs/static/swagger-initializer.js', noIds: true },
  'GET /v1/keys': { auth: 'public', path: () => '/v1/keys', noIds: true },
  'POST /v1/decisions': { auth: 'roles', path: () => '/v1/decisions', body: () => agentRequest, wrongType: [{ ...agentRequest, agent: 5 }, 'agent'], noIds: true },
  'GET /v1/decisions': { auth: 'any', path: () => '/v1/decisions', strictQuery: true, noIds: true },
  'GET /v1/decisions/:id': { auth: 'any', path: (i) => `/v1/decisions/${i.decision}`, strictQuery: true },
  'POST /v1/decisions/:id/approvals': { auth: 'roles', wrongRole: 'agent', path: (i) => `/v1/decisions/${i.decision}/approvals`, body: () => ({ verdict: 'approve' }), wrongType: [{ verdict: 1 }, 'verdict'] },
  'POST /v1/decisions/:id/override': { auth: 'roles', path: (i) => `/v1/decisions/${i.decision}/override`, body: () => ({ justification: 'needed' }), wrongType: [{ justification: 5 }, 'justification'] },
  'POST /v1/decisions/:id/outcome': { auth: 'roles', path: (i) => `/v1/decisions/${i.decision}/outcome`, body: () => ({ status: 'succeeded', output: null }), wrongType: [{ status: 'maybe' }, 'status'] },
  'GET /v1/approvals': { auth: 'roles', wrongRole: 'agent', path: () => '/v1/approvals', strictQuery: true, noIds: true },
  'GET /v1/approvals/stream': { auth: 'roles', wrongRole: 'agent', path: () => '/v1/approvals/stream', strictQuery: true, noIds: true },
  'GET /v1/decisions/:id/receipt': { auth: 'any', path: (i) => `/v1/decisions/${i.decision}/receipt` },
  'GET /v1/decisions/:id/events': { auth: 'any', path: (i) => `/v1/decisions/${i.decision}/events` },
  // The console: its pages and assets are public files; its session routes answer a session cookie (a key
  // request reads 404: it has no session), and sign-in takes a key in the body.
  'POST /v1/console/sessions': { auth: 'public', path: () => '/v1/console/sessions', body: () => ({ api_key: 'cs_x_y' }), wrongType: [{ api_key: 5 }, 'api_key'], noIds: true },
  'GET /v1/console/session': { auth: 'any', path: () => '/v1/console/session', noIds: true },
  'DELETE /v1/console/session': { auth: 'any', path: () => '/v1/console/session', noIds: true },
  'POST /v1/console/links': { auth: 'roles', wrongRole: 'agent', path: () => '/v1/console/links', noIds: true },
  'POST /v1/console/links/redeem': { auth: 'public', path: () => '/v1/console/links/redeem', body: () => ({ token: 'csl_x' }), wrongType: [{ token: 5 }, 'token'], noIds: true },
  'POST /v1/audit/replays': { auth: 'roles', path: () => '/v1/audit/replays', noIds: true },
  'GET /v1/audit/replays/latest': { auth: 'roles', path: () => '/v1/audit/replays/latest', strictQuery: true, noIds: true },
  'GET /': { auth: 'public', path: () => '/', noIds: true },
  'GET /sign-in': { auth: 'public', path: () => '/sign-in', noIds: true },
  'GET /inbox': { auth: 'public', path: () => '/inbox', noIds: true },
  'GET /decisions': { auth: 'public', path: () => '/decisions', noIds: true },
  'GET /decisions/:id': { auth: 'public', path: (i) => `/decisions/${i.decision}`, noIds: true },
  'GET /policies': { auth: 'public', path: () => '/policies', noIds: true },
  'GET /policies/:id': { auth: 'public', path: (i) => `/policies/${i.policy}`, noIds: true },
  'GET /agents': { auth: 'public', path: () => '/agents', noIds: true },
  'GET /agents/:id': { auth: 'public', path: () => '/agents/matrix-bot', noIds: true },
  'GET /tools': { auth: 'public', path: () => '/tools', noIds: true },
  'GET /members': { auth: 'public', path: () => '/members', noIds: true },
  'GET /audit': { auth: 'public', path: () => '/audit', noIds: true },
  'GET /assets/:file': { auth: 'public', path: () => '/assets/none.js', noIds: true },
  'POST /v1/tenants': { auth: 'platform-admin', path: () => '/v1/tenants', body: () => ({ id: 'matrix-new', name: 'New' }), wrongType: [{ id: 'matrix-new', name: ['x'] }, 'name'], noIds: true },
  'GET /v1/tenants': { auth: 'platform-admin', path: () => '/v1/tenants', strictQuery: true, noIds: true },
  'POST /v1/platform/admins': { auth: 'platform-admin', path: () => '/v1/platform/admins', body: (i) => ({ tenant_id: i.tenant, name: 'Matrix ops' }), wrongType: [{ tenant_id: 'default', name: ['x'] }, 'name'], noIds: true },
  'GET /v1/platform/admins': { auth: 'platform-admin', path: () => '/v1/platform/admins', noIds: true },
  // A member that is not a platform admin: every refusal below comes before the 404 a platform admin gets.
  'DELETE /v1/platform/admins/:tenant_id/:principal_id': { auth: 'platform-admin', path: (i) => `/v1/platform/admins/${i.tenant}/${i.principal}`, noIds: true },
  'POST /v1/admin/monitor/rebuild': { auth: 'platform-admin', path: () => '/v1/admin/monitor/rebuild', noIds: true },
  'POST /v1/admin/inbox/rebuild': { auth: 'platform-admin', path: () => '/v1/admin/inbox/rebuild', noIds: true },
  'GET /v1/tenants/:id': { auth: 'roles', path: (i) => `/v1/tenants/${i.tenant}` },
  'PATCH /v1/tenants/:id': { auth: 'roles', path: (i) => `/v1/tenants/${i.tenant}`, body: () => ({ default_decision: 'ALLOW' }), wrongType: [{ default_decision: 'MAYBE' }, 'default_decision'] },
  'PUT /v1/tenants/:id/evaluator': { auth: 'roles', path: (i) => `/v1/tenants/${i.tenant}/evaluator`, body: () => ({ url: 'https://8.8.8.8/v1', model: 'judge', api_key: 'sk-matrix' }), wrongType: [{ url: 'https://8.8.8.8/v1', model: 'judge', api_key: 5 }, 'api_key'] },
  'GET /v1/tenants/:id/evaluator': { auth: 'roles', path: (i) => `/v1/tenants/${i.tenant}/evaluator` },
  'DELETE /v1/tenants/:id/evaluator': { auth: 'roles', path: (i) => `/v1/tenants/${i.tenant}/evaluator` },
  'POST /v1/principals': { auth: 'roles', path: () => '/v1/principals', body: () => ({ name: 'm', kind: 'agent', roles: ['agent'] }), wrongType: [{ name: 'm', kind: 'agent', roles: 'agent' }, 'roles'], noIds: true },
  'GET /v1/principals': { auth: 'roles', path: () => '/v1/principals', strictQuery: true, noIds: true },
  'GET /v1/me': { auth: 'any', path: () => '/v1/me', noIds: true },
  'GET /v1/principals/:id': { auth: 'roles', path: (i) => `/v1/principals/${i.principal}` },
  'PATCH /v1/principals/:id': { auth: 'roles', path: (i) => `/v1/principals/${i.principal}`, body: () => ({ groups: ['sre'] }), wrongType: [{ groups: 'sre' }, 'groups'] },
  'POST /v1/api-keys': { auth: 'any', path: () => '/v1/api-keys', body: (i) => ({ principal_id: i.principal, name: 'k' }), wrongType: [{ name: 7 }, 'name'] },
  'GET /v1/api-keys': { auth: 'any', path: () => '/v1/api-keys', strictQuery: true, noIds: true },
  'DELETE /v1/api-keys/:id': { auth: 'any', path: (i) => `/v1/api-keys/${i.apiKey}` },
  'POST /v1/policies': { auth: 'roles', path: () => '/v1/policies', body: () => matrixPolicy('matrix-new-policy'), wrongType: [{ ...matrixPolicy('matrix-new-policy'), rules: 'x' }, 'rules'], noIds: true },
  'GET /v1/policies': { auth: 'any', path: () => '/v1/policies', strictQuery: true, noIds: true },
  'GET /v1/policies/:id': { auth: 'any', path: (i) => `/v1/policies/${i.policy}`, strictQuery: true },
  'PUT /v1/policies/:id': { auth: 'roles', path: (i) => `/v1/policies/${i.policy}`, body: (i) => matrixPolicy(i.policy), wrongType: [{ ...matrixPolicy('example'), rules: 'x' }, 'rules'] },
  'DELETE /v1/policies/:id': { auth: 'roles', path: (i) => `/v1/policies/${i.policy}` },
  'GET /v1/policies/:id/versions': { auth: 'any', path: (i) => `/v1/policies/${i.policy}/versions`, strictQuery: true },
  'GET /v1/policies/:id/diff': { auth: 'any', path: (i) => `/v1/policies/${i.policy}/diff?from=1&to=1` },
  'POST /v1/policies/:id/activate': { auth: 'roles', path: (i) => `/v1/policies/${i.policy}/activate` },
  'POST /v1/policies/:id/deprecate': { auth: 'roles', path: (i) => `/v1/policies/${i.policy}/deprecate` },
  'POST /v1/policies/:id/clone': { auth: 'roles', path: (i) => `/v1/policies/${i.policy}/clone` },
  'POST /v1/policies/:id/rollback': { auth: 'roles', path: (i) => `/v1/policies/${i.policy}/rollback`, body: () => ({ to_version: 1 }), wrongType: [{ to_version: 'one' }, 'to_version'] },
  'POST /v1/policies/:id/validate': { auth: 'roles', path: (i) => `/v1/policies/${i.policy}/validate` },
  'POST /v1/policies/:id/activation/approvals': { auth: 'roles', path: (i) => `/v1/policies/${i.policy}/activation/approvals`, body: () => ({ verdict: 'approve' }), wrongType: [{ verdict: 1 }, 'verdict'] },
  'GET /v1/policies/:id/export': { auth: 'any', path: (i) => `/v1/policies/${i.policy}/export`, strictQuery: true },
  'POST /v1/policies/import': { auth: 'roles', path: () => '/v1/policies/import', body: () => matrixExport, wrongType: [{ ...matrixExport, version: 'one' }, 'version'], noIds: true },
  // Platform policies and settings (platform admins); a tenant admin is the wrong role. The platform policy
  // `matrix-platform` is made in beforeAll.
  'POST /v1/platform/policies': { auth: 'platform-admin', path: () => '/v1/platform/policies', body: () => ({ ...matrixPolicy('matrix-new-platform'), scope: { level: 'platform' } }), wrongType: [{ ...matrixPolicy('matrix-new-platform'), scope: { level: 'platform' }, rules: 'x' }, 'rules'], noIds: true },
  'GET /v1/platform/policies': { auth: 'platform-admin', path: () => '/v1/platform/policies', strictQuery: true, noIds: true },
  'GET /v1/platform/policies/:id': { auth: 'platform-admin', path: () => '/v1/platform/policies/matrix-platform', strictQuery: true, noIds: true },
  'PUT /v1/platform/policies/:id': { auth: 'platform-admin', path: () => '/v1/platform/policies/matrix-platform', body: () => ({ ...matrixPolicy('matrix-platform'), scope: { level: 'platform' } }), wrongType: [{ ...matrixPolicy('matrix-platform'), scope: { level: 'platform' }, rules: 'x' }, 'rules'], noIds: true },
  'DELETE /v1/platform/policies/:id': { auth: 'platform-admin', path: () => '/v1/platform/policies/matrix-platform', noIds: true },
  'GET /v1/platform/policies/:id/versions': { auth: 'platform-admin', path: () => '/v1/platform/policies/matrix-platform/versions', strictQuery: true, noIds: true },
  'GET /v1/platform/policies/:id/diff': { auth: 'platform-admin', path: () => '/v1/platform/policies/matrix-platform/diff?from=1&to=1', noIds: true },
  'POST /v1/platform/policies/:id/activate': { auth: 'platform-admin', path: () => '/v1/platform/policies/matrix-platform/activate', noIds: true },
  'POST /v1/platform/policies/:id/deprecate': { auth: 'platform-admin', path: () => '/v1/platform/policies/matrix-platform/deprecate', noIds: true },
  'POST /v1/platform/policies/:id/clone': { auth: 'platform-admin', path: () => '/v1/platform/policies/matrix-platform/clone', noIds: true },
  'POST /v1/platform/policies/:id/rollback': { auth: 'platform-admin', path: () => '/v1/platform/policies/matrix-platform/rollback', body: () => ({ to_version: 1 }), wrongType: [{ to_version: 'one' }, 'to_version'], noIds: true },
  'POST /v1/platform/policies/:id/validate': { auth: 'platform-admin', path: () => '/v1/platform/policies/matrix-platform/validate', noIds: true },
  'POST /v1/platform/policies/:id/activation/approvals': { auth: 'platform-admin', path: () => '/v1/platform/policies/matrix-platform/activation/approvals', body: () => ({ verdict: 'approve' }), wrongType: [{ verdict: 1 }, 'verdict'], noIds: true },
  'GET /v1/platform/policies/:id/export': { auth: 'platform-admin', path: () => '/v1/platform/policies/matrix-platform/export', strictQuery: true, noIds: true },
  'POST /v1/platform/policies/import': { auth: 'platform-admin', path: () => '/v1/platform/policies/import', body: () => matrixExport, wrongType: [{ ...matrixExport, version: 'one' }, 'version'], noIds: true },
  'GET /v1/platform/settings': { auth: 'platform-admin', path: () => '/v1/platform/settings', strictQuery: true, noIds: true },
  'PATCH /v1/platform/settings': { auth: 'platform-admin', path: () => '/v1/platform/settings', body: () => ({ policy_four_eyes: false }), wrongType: [{ policy_four_eyes: 'yes' }, 'policy_four_eyes'], noIds: true },
  'POST /v1/agents/:id/manifest': { auth: 'roles', path: () => '/v1/agents/matrix-bot/manifest', body: () => ({ agent: { id: 'matrix-bot' }, tools: ['search_tool'] }), wrongType: [{ agent: { id: 'matrix-bot' }, tools: 5 }, 'tools'], noIds: true },
  'GET /v1/agents/:id/binding': { auth: 'any', path: () => '/v1/agents/matrix-bot/binding', strictQuery: true, noIds: true },
  'POST /v1/agents/:id/binding': { auth: 'roles', path: () => '/v1/agents/matrix-bot/binding', body: (i) => ({ policy_id: i.policy }), wrongType: [{ policy_id: 5 }, 'policy_id'] },
  'DELETE /v1/agents/:id/binding': { auth: 'roles', path: () => '/v1/agents/matrix-bot/binding', noIds: true },
  'POST /v1/delegations': { auth: 'roles', wrongRole: 'agent', path: () => '/v1/delegations', body: (i) => ({ to: i.principal, group: 'sre', ends_at: '2099-01-01T00:00:00.000Z' }), wrongType: [{ to: 5, group: 'sre', ends_at: '2099-01-01T00:00:00.000Z' }, 'to'], noIds: true },
  'GET /v1/delegations': { auth: 'any', path: () => '/v1/delegations', strictQuery: true, noIds: true },
  'DELETE /v1/delegations/:id': { auth: 'roles', wrongRole: 'agent', path: () => `/v1/delegations/dlg_${'0'.repeat(24)}`, noIds: true },
  'POST /v1/policy/simulate': { auth: 'any', path: () => '/v1/policy/simulate', body: () => ({ request: agentRequest }), wrongType: [{ request: agentRequest, at: 5 }, 'at'], noIds: true },
  'POST /api/v1/policy/simulate': { auth: 'any', path: () => '/api/v1/policy/simulate', body: () => ({ request: agentRequest }), wrongType: [{ request: agentRequest, at: 5 }, 'at'], noIds: true },
  'POST /v1/tools/catalog': { auth: 'roles', path: () => '/v1/tools/catalog', body: () => ({ format: 'mcp', source: 'matrix-new', document: { tools: [{ name: 'matrix_tool' }] } }), wrongType: [{ format: 'mcp', source: 'matrix-new', document: 'x' }, 'document'], noIds: true },
  'GET /v1/tools/catalog': { auth: 'any', path: () => '/v1/tools/catalog', strictQuery: true, noIds: true },
  'GET /v1/tools/catalog/lookup': { auth: 'any', path: () => '/v1/tools/catalog/lookup?tool=matrix_tool', noIds: true },
  'GET /v1/tools/catalog/:source': { auth: 'any', path: (i) => `/v1/tools/catalog/${i.catalogSource}`, strictQuery: true },
  'DELETE /v1/tools/catalog/:source': { auth: 'roles', path: (i) => `/v1/tools/catalog/${i.catalogSource}` },
  // Channels (issue 8): public, authenticated by Slack's signature or the link and page token instead; their
  // own bad-input cases are in test/int/channels-*.int.test.ts.
  'POST /v1/slack/interactions': { auth: 'public', path: () => '/v1/slack/interactions', noIds: true },
  'GET /v1/slack/workspace': { auth: 'roles', path: () => '/v1/slack/workspace', noIds: true },
  'PUT /v1/slack/workspace': { auth: 'roles', path: () => '/v1/slack/workspace', body: () => ({ team_id: 'T0MATRIX' }), wrongType: [{ team_id: 5 }, 'team_id'], noIds: true },
  'GET /v1/email-approvals/:token': { auth: 'public', path: () => `/v1/email-approvals/${'A'.repeat(43)}`, noIds: true },
  'POST /v1/email-approvals/:token': { auth: 'public', path: () => `/v1/email-approvals/${'A'.repeat(43)}`, noIds: true },
};

let stack: TestStack;
let routes: string[];
const keys = { bootstrap: '', platform: '', adminA: '', approverA: '', agentA: '', revoked: '', expired: '', adminB: '' };
let idsA: Ids;
let idsB: Ids;
const SECRETS: string[] = [];
const B_NAME = 'Bravo Confidential Holdings';

async function routeTable(): Promise<string[]> {
  const config = loadConfig({ ...stack.env });
  const temporal = new Client({ connection: Connection.lazy({ address: config.TEMPORAL_ADDRESS }) });
  const app = await buildServer({ config, db: stack.db, temporal, policies: new ActivePolicies(stack.db, config.DATABASE_URL, () => {}) });
  await app.ready();
  const table = [...new Set(app.routeTable.map((r) => `${r.method} ${r.url}`))];
  await app.close();
  return table;
}

const as = (key: string) => ({ url: stack.url, key });

async function fingerprint(): Promise<string> {
  const q = async (sql: string) => (await stack.db.query<{ f: string }>(sql)).rows[0]!.f;
  return [
    await q(`SELECT count(*)::text || '/' || coalesce(max(position)::text, '') AS f FROM events`),
    await q(`SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) AS f FROM tenants t`),
    await q(`SELECT md5(coalesce(string_agg(p::text, ',' ORDER BY id), '')) AS f FROM principals p`),
    await q(`SELECT md5(coalesce(string_agg(k::text, ',' ORDER BY id), '')) AS f FROM api_keys k`),
  ].join(' ');
}

beforeAll(async () => {
  stack = await startTestStack();
  keys.bootstrap = stack.key;
  keys.platform = stack.bootstrapKey;
  routes = await routeTable();
  const boot = as(stack.key);
  const b = await api(as(keys.platform), 'POST', '/v1/tenants', { id: 'tenant-b', name: B_NAME });
  expect(b.status).toBe(201);
  keys.adminB = b.body.admin_api_key;
  const adminA = await api(boot, 'POST', '/v1/principals', { name: 'alice', kind: 'person', roles: ['admin', 'auditor', 'agent', 'approver'] });
  keys.adminA = adminA.body.api_key;
  const approver = await api(boot, 'POST', '/v1/principals', { name: 'bob', kind: 'person', roles: ['approver'], groups: ['finance'] });
  keys.approverA = approver.body.api_key;
  const victim = await api(boot, 'POST', '/v1/principals', { name: 'carol', kind: 'agent', roles: ['agent'] });
  keys.agentA = victim.body.api_key;
  const revoked = await api(boot, 'POST', '/v1/api-keys', { principal_id: victim.body.id, name: 'to revoke' });
  keys.revoked = revoked.body.api_key;
  expect((await api(boot, 'DELETE', `/v1/api-keys/${revoked.body.id}`)).status).toBe(200);
  const expiring = await api(boot, 'POST', '/v1/api-keys', { principal_id: victim.body.id, name: 'to expire', expires_at: new Date(Date.now() + 60_000).toISOString() });
  keys.expired = expiring.body.api_key;
  await stack.db.query(`UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1`, [expiring.body.id]);
  const decA = await api(boot, 'POST', '/v1/decisions', agentRequest);
  expect((await api(boot, 'POST', '/v1/tools/catalog', { format: 'mcp', source: 'matrix-a', document: { tools: [{ name: 'a_tool' }] } })).status).toBe(201);
  idsA = { tenant: 'default', principal: victim.body.id, apiKey: expiring.body.id, decision: decA.body.decision_id, policy: 'example', catalogSource: 'matrix-a' };

  const bAgent = await api(as(keys.adminB), 'POST', '/v1/principals', { name: `${B_NAME} agent`, kind: 'agent', roles: ['agent'], agent_id: 'b-bot' });
  const bKey = await api(as(keys.adminB), 'POST', '/v1/api-keys', { principal_id: bAgent.body.id, name: 'b key' });
  const decB = await api(as(bAgent.body.api_key), 'POST', '/v1/decisions', { agent: { id: 'b-bot' }, action: { tool: 'b_tool' } });
  expect(decB.status).toBe(200);
  expect((await api(as(keys.adminB), 'POST', '/v1/policies', matrixPolicy('b-only-policy'))).status).toBe(201);
  expect((await api(as(keys.adminB), 'POST', '/v1/tools/catalog', { format: 'mcp', source: 'b-only-source', document: { tools: [{ name: 'b_tool' }] } })).status).toBe(201);
  idsB = { tenant: 'tenant-b', principal: bAgent.body.id, apiKey: bKey.body.id, decision: decB.body.decision_id, policy: 'b-only-policy', catalogSource: 'b-only-source' };
  const platformDoc = { ...matrixPolicy('matrix-platform'), scope: { level: 'platform' } };
  expect((await api(as(keys.platform), 'POST', '/v1/platform/policies', platformDoc)).status).toBe(201);
  expect((await api(as(keys.platform), 'POST', '/v1/platform/policies/matrix-platform/activate')).status).toBe(200);
  SECRETS.push(keys.adminB, bAgent.body.api_key, bKey.body.api_key, keys.bootstrap, keys.platform, keys.adminA);
  // Both runs have receipts, so the receipt route answers 200 for the owner (and must still 404 for others).
  for (const id of [idsA.decision, idsB.decision]) {
    await eventually(async () => ((await stack.db.query("SELECT 1 FROM events WHERE stream_id = $1 AND type = 'ReceiptIssued'", [`run/${id}`])).rowCount ? true : undefined));
  }
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

type Res = Awaited<ReturnType<typeof api>>;
const failures: string[] = [];
/** The key a row's route is meant for: the platform admin's for platform routes, else the test operator's. */
const rightful = (row: { auth: string }) => (row.auth === 'platform-admin' ? keys.platform : keys.bootstrap);

function check(what: string, res: Res, status: number, code?: string, field?: string): void {
  const text = typeof res.body === 'string' ? res.body : JSON.stringify(res.body);
  const problems: string[] = [];
  if (res.status >= 500) problems.push(`5xx`);
  if (res.status !== status) problems.push(`status ${res.status} (expected ${status})`);
  if (!/application\/problem\+json/.test(res.headers.get('content-type') ?? '')) problems.push(`content-type ${res.headers.get('content-type')}`);
  if (code && res.body?.code !== code) problems.push(`code ${res.body?.code} (expected ${code})`);
  if (typeof res.body?.detail !== 'string' || !res.body.detail) problems.push('no detail');
  if (!res.headers.get('x-request-id')) problems.push('no x-request-id');
  if (field && !JSON.stringify(res.body?.errors ?? res.body?.detail ?? '').includes(field)) problems.push(`does not name ${field}: ${text.slice(0, 300)}`);
  if (text.includes(B_NAME)) problems.push("leaks tenant B's name");
  for (const s of SECRETS) if (text.includes(s.slice(16))) problems.push('leaks a key secret');
  if (problems.length) failures.push(`${what}: ${problems.join('; ')}`);
}

const AUTH_HEADER_CASES: Array<[string, () => string | null]> = [
  ['missing key', () => null],
  ['malformed key', () => 'not-a-key'],
  ['unknown key', () => `cs_zzzzzzzzzzzz_${'A'.repeat(43)}`],
  ['wrong secret of a real prefix', () => `${keys.adminA.slice(0, 16)}${'B'.repeat(43)}`],
  ['revoked key', () => keys.revoked],
  ['expired key', () => keys.expired],
];

async function send(method: string, path: string, key: string | null, body?: string, headers: Record<string, string> = {}): Promise<Res> {
  const res = await fetch(`${stack.url}${path}`, {
    method,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body,
  });
  // A stream that opened (GET /v1/approvals/stream) is answered: its status and headers are what is checked.
  if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
    await res.body?.cancel();
    return { status: res.status, body: '', headers: res.headers };
  }
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: parsed, headers: res.headers };
}

describe('bad-input matrix over every route', () => {
  it('every route in the route table has a matrix row (and every row a route)', () => {
    expect(routes.filter((r) => !ROWS[r]).sort()).toEqual([]);
    expect(Object.keys(ROWS).filter((r) => !routes.includes(r)).sort()).toEqual([]);
  });

  it('each row works for its rightful caller (the rows are right, so the refusals below mean something)', async () => {
    for (const [route, row] of Object.entries(ROWS)) {
      if (route.startsWith('POST /v1/tenants') || route.startsWith('POST') || route.startsWith('PATCH') || route.startsWith('PUT') || route.startsWith('DELETE')) continue;
      const res = await send(route.split(' ')[0]!, row.path(idsA), row.auth === 'public' ? null : rightful(row));
      expect({ route, status: res.status < 400 || (route === 'GET /readyz' && res.status === 503) || (route === 'GET /v1/email-approvals/:token' && res.status === 404) || (route === 'GET /v1/console/session' && res.status === 404) || (route === 'GET /assets/:file' && res.status === 404) || (route === 'GET /v1/tenants/:id/evaluator' && res.status === 404 && /has no evaluator/.test(JSON.stringify(res.body))) }).toEqual({ route, status: true });
    }
  });

  it('refuses every bad request precisely, writes nothing, leaks nothing, never 5xx', async () => {
    const before = await fingerprint();
    for (const [route, row] of Object.entries(ROWS)) {
      const method = route.split(' ')[0]!;
      const path = row.path(idsA);
      const body = row.body ? JSON.stringify(row.body(idsA)) : undefined;

      // 10 MB: refused from Content-Length before authentication, parsing or anything else.
      check(`${route} 10MB`, await send(method === 'GET' || method === 'DELETE' ? 'POST' : method, path, null, JSON.stringify({ pad: 'x'.repeat(10 * 1024 * 1024) })), 413, 'payload_too_large');

      if (row.auth !== 'public') {
        for (const [name, key] of AUTH_HEADER_CASES) check(`${route} ${name}`, await send(method, path, key(), body), 401, 'unauthorized');
      }
      if (row.auth === 'roles' || row.auth === 'platform-admin') {
        check(`${route} wrong role`, await send(method, path, row.auth === 'platform-admin' ? keys.adminA : row.wrongRole === 'agent' ? keys.agentA : keys.approverA, body), 403, 'forbidden');
      }
      if (!row.noIds) {
        const crossBody = row.body ? JSON.stringify(row.body(idsB)) : undefined;
        check(`${route} other tenant's id`, await send(method, row.path(idsB), keys.adminA, crossBody), row.crossStatus ?? 404, 'not_found');
      }
      if (row.body) {
        const key = rightful(row);
        check(`${route} malformed JSON`, await send(method, path, key, '{"name": "x",'), 400, 'bad_request');
        check(`${route} wrong types`, await send(method, path, key, JSON.stringify(row.wrongType![0])), 400, 'validation_failed', row.wrongType![1]);
        check(`${route} unknown field`, await send(method, path, key, JSON.stringify({ ...row.body(idsA), zz_unknown_field: 1 })), 400, 'validation_failed', 'zz_unknown_field');
        check(`${route} deeply nested`, await send(method, path, key, `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`), 400, 'bad_request');
        const wide = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i]));
        const wideRes = await send(method, path, key, JSON.stringify(wide));
        check(`${route} 100k keys`, wideRes, 413, 'payload_too_large');
        check(`${route} not JSON`, await send(method, path, key, 'a=b', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type');
      }
      if (row.strictQuery) {
        check(`${route} unknown query parameter`, await send(method, `${path}?zz_unknown_param=1`, rightful(row)), 400, 'validation_failed', 'zz_unknown_param');
      }
    }
    // Cross-tenant ids inside bodies and queries, beyond the path parameters.
    check('POST /v1/api-keys for a principal of B', await send('POST', '/v1/api-keys', keys.adminA, JSON.stringify({ principal_id: idsB.principal })), 404, 'not_found');
    check('bad cursor', await send('GET', '/v1/principals?cursor=not-a-cursor', keys.adminA), 400, 'validation_failed', 'cursor');
    expect(failures).toEqual([]);
    expect(await fingerprint()).toBe(before);
  });

  it("another tenant's rows never appear in lists", async () => {
    const lists = ['/v1/decisions', '/v1/principals', '/v1/api-keys', '/v1/tools/catalog'];
    for (const path of lists) {
      const res = await api(as(keys.adminA), 'GET', path);
      expect(res.status).toBe(200);
      expect(JSON.stringify(res.body)).not.toMatch(new RegExp(`${idsB.decision}|${idsB.principal}|${idsB.apiKey}|tenant-b|${idsB.catalogSource}|b_tool`));
    }
  });
});
