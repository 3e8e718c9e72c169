import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activateYaml, addPrincipal, api, eventually, ROOT, startTestStack, type TestStack } from './harness.ts';

/**
 * The monitor against the real stack: GET /v1/decisions filtered by decision, status, policy id and version,
 * rule, agent, tool, operation and time, paged by cursor; each item carrying the deciding rule, policy and
 * version, reason_code, run id, input digest, and the input only for roles that may see it; the projection
 * rebuilt from the log giving the same rows; the CLI's filters and policy reads. Attacks (wrong tenant, forged
 * filters, oversized values, invalid cursors, limit abuse) each print their count and assert 0 got through.
 */
let stack: TestStack;
const RUN = randomUUID().slice(0, 8);
const POLICY = `mon-${RUN}`;
const as = (key: string) => ({ url: stack.url, key });
const report = (name: string, attempts: number, through: string[]) => {
  console.log(`attack ${name}: ${attempts} attempts, ${through.length} got through`);
  expect(through).toEqual([]);
};

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), ...args], { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const POLICY_YAML = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: ${POLICY}, name: Monitor test }
scope: { level: tenant }
rules:
  - name: no-shell
    match: { tool: mon_shell }
    decision: DENY
    reason: no shell from agents
  - name: small-pay
    match: { tool: mon_pay, operation: Refund }
    condition: amount <= 500
    decision: ALLOW
    reason: small refunds are automatic
  - name: big-pay
    match: { tool: mon_pay, operation: Refund }
    condition: amount > 500
    decision: REQUIRE_APPROVAL
    reason: big refunds need a human
    approval: { approvers: [mon-finance], quorum: 1, timeout: 1h, on_timeout: DENY }
`;

type Item = Record<string, any>;
let botA: { id: string; key: string };
let botB: { id: string; key: string };
let approver: { id: string; key: string };
let auditor: { id: string; key: string };
let author: { id: string; key: string };
const asked: Record<string, { decision_id: string; body: any }> = {};
let startedAt: string;

async function ask(name: string, key: string, body: any): Promise<string> {
  const res = await api(as(key), 'POST', '/v1/decisions', body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  asked[name] = { decision_id: res.body.decision_id, body };
  return res.body.decision_id;
}

async function list(key: string, query: string): Promise<{ status: number; body: any }> {
  return api(as(key), 'GET', `/v1/decisions?${query}`);
}

async function all(key: string, query: string): Promise<Item[]> {
  const items: Item[] = [];
  let cursor: string | null = null;
  do {
    const res = await list(key, `${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    items.push(...res.body.items);
    cursor = res.body.next_cursor;
  } while (cursor);
  return items;
}

const ids = (items: Item[]) => items.map((i) => i['decision_id'] as string).sort();
const idsOf = (...names: string[]) => names.map((n) => asked[n]!.decision_id).sort();

beforeAll(async () => {
  stack = await startTestStack();
  await activateYaml(stack, POLICY_YAML);
  botA = await addPrincipal(stack, { name: `mon-a-${RUN}`, kind: 'agent', roles: ['agent'] });
  botB = await addPrincipal(stack, { name: `mon-b-${RUN}`, kind: 'agent', roles: ['agent'] });
  approver = await addPrincipal(stack, { name: `mon-approver-${RUN}`, roles: ['approver'], groups: ['mon-finance'] });
  auditor = await addPrincipal(stack, { name: `mon-auditor-${RUN}`, roles: ['auditor'] });
  author = await addPrincipal(stack, { name: `mon-author-${RUN}`, roles: ['author'] });
  startedAt = new Date(Date.now() - 1000).toISOString();
  const a = { id: `mon-a-${RUN}` };
  const b = { id: `mon-b-${RUN}` };
  for (let i = 0; i < 3; i++) await ask(`a-small-${i}`, botA.key, { agent: a, action: { tool: 'mon_pay', operation: 'Refund', args: { order: `A-${i}` } }, context: { amount: 100 + i } });
  await ask('a-big', botA.key, { agent: a, action: { tool: 'mon_pay', operation: 'Refund', args: { order: 'A-big' } }, context: { amount: 900 } });
  await ask('a-big-2', botA.key, { agent: a, action: { tool: 'mon_pay', operation: 'Refund', args: { order: 'A-big-2' } }, context: { amount: 901 } });
  for (let i = 0; i < 2; i++) await ask(`b-shell-${i}`, botB.key, { agent: b, action: { tool: 'mon_shell', operation: 'exec', args: { cmd: `ls ${i}` } }, context: {} });
  await ask('b-small', botB.key, { agent: b, action: { tool: 'mon_pay', operation: 'Refund', args: { order: 'B-1' } }, context: { amount: 50 } });
  // Every run recorded: finals final, the two big refunds waiting.
  await eventually(async () => {
    const items = await all(stack.key, `since=${encodeURIComponent(startedAt)}&limit=200`);
    const recorded = items.filter((i) => i['status'] !== 'requested');
    return recorded.length === Object.keys(asked).length ? true : undefined;
  }, 60_000, 'every run recorded');
  // One big refund approved: its row moves to final through the approval.
  await eventually(async () => {
    const r = await api(as(approver.key), 'POST', `/v1/decisions/${asked['a-big-2']!.decision_id}/approvals`, { verdict: 'approve' });
    return r.status === 200 ? true : undefined;
  }, 30_000, 'the approval counted');
  await eventually(async () => {
    const r = await list(stack.key, `rule=big-pay&status=final`);
    return r.body.items?.length === 1 ? true : undefined;
  }, 30_000, 'the approved run final');
}, 240_000);
afterAll(async () => {
  await stack?.stop();
});

describe('the monitor lists decisions by its filters', () => {
  it('policy + decision: each block shows the rule, policy and version, agent, input and run id', async () => {
    const items = await all(stack.key, `policy_id=${POLICY}&decision=DENY`);
    expect(ids(items)).toEqual(idsOf('b-shell-0', 'b-shell-1'));
    for (const item of items) {
      const req = Object.values(asked).find((x) => x.decision_id === item['decision_id'])!;
      expect(item).toMatchObject({
        decision: 'DENY', status: 'final', matched_rule: 'no-shell', policy_id: POLICY, policy_version: 1, reason: 'no shell from agents',
        reason_code: 'policy_violation', agent_id: `mon-b-${RUN}`, tool: 'mon_shell', operation: 'exec',
        run_id: `decision/default/${item['decision_id']}`,
      });
      expect(item['input_digest']).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(item['input'].action.args).toEqual(req.body.action.args);
      expect(item['matched_rules']).toContainEqual({ policy_id: POLICY, version: 1, rule: 'no-shell', decision: 'DENY' });
      // The decision result and the list agree on what decided it.
      const one = await api(as(stack.key), 'GET', `/v1/decisions/${item['decision_id']}`);
      expect({ reason_code: item['reason_code'], policy_id: item['policy_id'] }).toEqual({ reason_code: one.body.reason_code, policy_id: one.body.policy_id });
    }
  });

  it('every filter narrows to exactly the runs it names', async () => {
    const since = `since=${encodeURIComponent(startedAt)}`;
    const cases: Array<[string, string[]]> = [
      [`agent=mon-a-${RUN}`, ['a-small-0', 'a-small-1', 'a-small-2', 'a-big', 'a-big-2']],
      [`agent=mon-b-${RUN}&tool=mon_pay`, ['b-small']],
      [`tool=mon_shell&${since}`, ['b-shell-0', 'b-shell-1']],
      [`operation=Refund&${since}`, ['a-small-0', 'a-small-1', 'a-small-2', 'a-big', 'a-big-2', 'b-small']],
      [`rule=small-pay`, ['a-small-0', 'a-small-1', 'a-small-2', 'b-small']],
      [`policy_id=${POLICY}&policy_version=1&decision=ALLOW`, ['a-small-0', 'a-small-1', 'a-small-2', 'b-small', 'a-big-2']],
      [`policy_id=${POLICY}&policy_version=2`, []],
      [`policy_id=${POLICY}&decision=REQUIRE_APPROVAL`, ['a-big']],
      [`policy_id=${POLICY}&status=pending_approval`, ['a-big']],
      [`rule=big-pay&status=final`, ['a-big-2']],
      [`policy_id=${POLICY}&${since}&until=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`, Object.keys(asked)],
      [`policy_id=${POLICY}&until=${encodeURIComponent(startedAt)}`, []],
      [`policy_id=${POLICY}&since=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`, []],
    ];
    for (const [query, names] of cases) {
      expect(ids(await all(stack.key, query)), query).toEqual(idsOf(...names));
    }
    const approved = (await all(stack.key, 'rule=big-pay&status=final'))[0]!;
    expect(approved).toMatchObject({ decision: 'ALLOW', reason_code: 'approved', policy_id: POLICY, policy_version: 1 });
    expect(approved['decided_at']).not.toBeNull();
    const pending = (await all(stack.key, `policy_id=${POLICY}&status=pending_approval`))[0]!;
    expect(pending).toMatchObject({ status: 'pending_approval', reason_code: 'approval_required', decided_at: null });
  });

  it('pages by cursor: newest first, every item once, in the same order as one page', async () => {
    const whole = await list(stack.key, `policy_id=${POLICY}&limit=200`);
    expect(whole.status).toBe(200);
    const paged = await all(stack.key, `policy_id=${POLICY}&limit=2`);
    expect(paged.map((i) => i['decision_id'])).toEqual(whole.body.items.map((i: Item) => i['decision_id']));
    const times = paged.map((i) => Date.parse(i['requested_at'] as string));
    expect([...times].sort((x, y) => y - x)).toEqual(times);
    expect(paged).toHaveLength(Object.keys(asked).length);
  });

  it('shows the input to admins, auditors and approvers; agents see only their own runs and authors only the digest', async () => {
    for (const key of [auditor.key, approver.key]) {
      const items = await all(key, `policy_id=${POLICY}`);
      expect(items).toHaveLength(Object.keys(asked).length);
      expect(items.every((i) => i['input'] !== undefined)).toBe(true);
    }
    const mine = await all(botA.key, `policy_id=${POLICY}`);
    expect(ids(mine)).toEqual(idsOf('a-small-0', 'a-small-1', 'a-small-2', 'a-big', 'a-big-2'));
    expect(mine.every((i) => i['input'] === undefined && typeof i['input_digest'] === 'string')).toBe(true);
    const byAuthor = await all(author.key, `policy_id=${POLICY}`);
    expect(byAuthor).toHaveLength(Object.keys(asked).length);
    expect(byAuthor.every((i) => i['input'] === undefined)).toBe(true);
    // An agent asking for another agent's runs by filter still sees only its own: none.
    expect((await all(botA.key, `agent=mon-b-${RUN}`))).toEqual([]);
  });
});

describe('the projection is rebuilt from the log', () => {
  const snapshot = async () => (await stack.db.query('SELECT * FROM decision_monitor ORDER BY seq')).rows;

  it('gives the same rows, and only a platform admin may start it', async () => {
    const before = await snapshot();
    expect(before.length).toBeGreaterThanOrEqual(Object.keys(asked).length);
    const admin = await addPrincipal(stack, { name: `mon-admin-${RUN}`, roles: ['admin'] });
    for (const key of [admin.key, auditor.key, botA.key]) expect((await api(as(key), 'POST', '/v1/admin/monitor/rebuild')).status).toBe(403);
    const res = await api(as(stack.bootstrapKey), 'POST', '/v1/admin/monitor/rebuild');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.rows).toBe(before.length);
    expect(res.body.events_read).toBeGreaterThanOrEqual(before.length * 2);
    expect(await snapshot()).toEqual(before);
    // From nothing: the rows deleted (as the schema owner: the application role may not), then rebuilt.
    const owner = new pg.Client({ connectionString: stack.env['DATABASE_ADMIN_URL'] });
    await owner.connect();
    try {
      await owner.query(`BEGIN; SELECT set_config('countersign.system', 'test', true); DELETE FROM decision_monitor; COMMIT`);
    } finally {
      await owner.end();
    }
    expect(await snapshot()).toEqual([]);
    expect((await api(as(stack.bootstrapKey), 'POST', '/v1/admin/monitor/rebuild')).status).toBe(200);
    expect(await snapshot()).toEqual(before);
  });

  it('countersign admin rebuild-projection, decisions list filters, policy list/show/get/pull', async () => {
    const env = { COUNTERSIGN_URL: stack.url, COUNTERSIGN_API_KEY: stack.key };
    const rebuilt = await cli(['admin', 'rebuild-projection', '--json'], { ...env, COUNTERSIGN_API_KEY: stack.bootstrapKey });
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    expect(JSON.parse(rebuilt.stdout)).toMatchObject({ rows: expect.any(Number), events_per_second: expect.any(Number) });
    const denied = await cli(['decisions', 'list', '--policy', POLICY, '--decision', 'DENY', '--json'], env);
    expect(denied.code, denied.stderr).toBe(0);
    expect(ids(JSON.parse(denied.stdout) as Item[])).toEqual(idsOf('b-shell-0', 'b-shell-1'));
    const table = await cli(['decisions', 'list', '--policy', POLICY, '--rule', 'no-shell'], env);
    expect(table.stdout).toContain('POLICY_VERSION');
    expect(table.stdout).toContain('no-shell');
    const bad = await cli(['decisions', 'list', '--policy-version', '1'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('querystring.policy_version');

    const listed = await cli(['policy', 'list', '--json'], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { items: Item[] }).items.map((p) => p['id'])).toContain(POLICY);
    const shown = await cli(['policy', 'show', POLICY], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/active_version\s+1/);
    const got = await cli(['policy', 'get', POLICY], env);
    expect(got.code, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ metadata: { id: POLICY } });
    const v1 = await cli(['policy', 'pull', POLICY, '--version', '1', '--yaml'], env);
    expect(v1.code, v1.stderr).toBe(0);
    expect(v1.stdout).toContain('name: no-shell');
    const none = await cli(['policy', 'get', POLICY, '--draft'], env);
    expect(none.code).toBe(2);
    const both = await cli(['policy', 'pull'], env);
    expect(both.code).toBe(2);
  });
});

describe('attacks on the monitor', () => {
  it('another tenant, with every filter and cursor of this one, sees none of its runs', async () => {
    const tenant = `mon-${RUN}-other`;
    const created = await api(as(stack.bootstrapKey), 'POST', '/v1/tenants', { id: tenant, name: tenant });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const other = created.body.admin_api_key as string;
    const page = await list(stack.key, `policy_id=${POLICY}&limit=1`);
    const cursor = page.body.next_cursor as string;
    const queries = [
      '', `policy_id=${POLICY}`, `policy_id=${POLICY}&decision=DENY`, `agent=mon-a-${RUN}`, `agent=mon-b-${RUN}`, 'tool=mon_pay', 'tool=mon_shell',
      'rule=no-shell', 'rule=small-pay', 'status=final', 'status=pending_approval', `since=${encodeURIComponent(startedAt)}`,
      `cursor=${encodeURIComponent(cursor)}`, `policy_id=${POLICY}&cursor=${encodeURIComponent(cursor)}`, 'decision=ALLOW', 'operation=Refund',
    ];
    const mine = new Set(Object.values(asked).map((a) => a.decision_id));
    const through: string[] = [];
    for (const q of queries) {
      const res = await list(other, `${q}&limit=200`);
      if (res.status !== 200 || res.body.items.some((i: Item) => mine.has(i['decision_id']) || JSON.stringify(i).includes(RUN))) through.push(q);
    }
    // The other tenant's admin cannot rebuild (tenant admins are not platform admins).
    if ((await api(as(other), 'POST', '/v1/admin/monitor/rebuild')).status !== 403) through.push('rebuild');
    report('monitor-wrong-tenant', queries.length + 1, through);
  });

  it('forged filters: SQL-ish, wildcard and odd strings match nothing and change nothing', async () => {
    const forged = [
      "' OR '1'='1", "x' OR 1=1 --", "'; DROP TABLE decision_monitor; --", "%", "*", "_", "mon%", "mon_*", '\\', '"', "$1", "NULL", "null",
      'no-shell\' OR matched_rule IS NOT NULL --', `${POLICY}' OR tenant_id <> 'default`, '\u0000', '𝕏', ') OR (1=1',
    ];
    const fields = ['agent', 'policy_id', 'rule', 'tool', 'operation'];
    const rowsBefore = (await stack.db.query('SELECT count(*)::int AS n FROM decision_monitor')).rows[0].n as number;
    const through: string[] = [];
    let attempts = 0;
    for (const field of fields) {
      for (const value of forged) {
        attempts += 1;
        const res = await list(stack.key, `${field}=${encodeURIComponent(value)}&limit=200`);
        // Refused as invalid, or answered with nothing: never rows, never a server error.
        if (!(res.status === 400 || (res.status === 200 && res.body.items.length === 0))) through.push(`${field}=${value} -> ${res.status}`);
      }
    }
    for (const q of ['decision=DENY%27%20OR%201%3D1', 'decision=deny', 'status=final%27--', 'policy_version=1%20OR%201%3D1', `policy_id=${POLICY}&policy_version=-1`,
      'since=yesterday', "since=2026-01-01'", 'until=2026-13-01T00:00:00Z', 'tenant_id=default', 'requested_by=x', 'input=1', 'order=asc']) {
      attempts += 1;
      const res = await list(stack.key, q);
      if (res.status !== 400) through.push(`${q} -> ${res.status}`);
    }
    const rowsAfter = (await stack.db.query('SELECT count(*)::int AS n FROM decision_monitor')).rows[0].n as number;
    if (rowsAfter !== rowsBefore) through.push('rows changed');
    report('monitor-forged-filters', attempts, through);
  });

  it('oversized values are refused', async () => {
    const through: string[] = [];
    let attempts = 0;
    for (const field of ['agent', 'policy_id', 'rule', 'tool', 'operation', 'since', 'cursor']) {
      for (const size of [201, 5_000, 60_000]) {
        attempts += 1;
        const res = await list(stack.key, `${field}=${'a'.repeat(size)}`);
        if (![400, 414, 431].includes(res.status)) through.push(`${field} x${size} -> ${res.status}`);
      }
    }
    report('monitor-oversized', attempts, through);
  });

  it('invalid and forged cursors are a 400 naming the cursor, never a page', async () => {
    const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
    const cursors = [
      'x', '!!!', b64('not json'), b64({}), b64({ p: '5' }), b64({ t: '2026-01-01T00:00:00.000000Z' }), b64({ s: '1' }),
      b64({ t: '2026-01-01T00:00:00.000000Z', s: '1 OR 1=1' }), b64({ t: "2026-01-01T00:00:00.000000Z' OR '1'='1", s: '1' }),
      b64({ t: '2026-01-01T00:00:00.000000Z', s: '-1' }), b64({ t: '2026-01-01T00:00:00.000000Z', s: '0' }), b64({ t: '2026-01-01T00:00:00.000000Z', s: '99999999999999999999' }),
      b64({ t: '2026-99-99T99:99:99.999999Z', s: '1' }), b64({ t: '2026-01-01T00:00:00.000000Z', s: '1', tenant: 'other' }), b64([1, 2]), b64(null),
    ];
    const through: string[] = [];
    for (const c of cursors) {
      const res = await list(stack.key, `cursor=${encodeURIComponent(c)}`);
      if (res.status !== 400 || !JSON.stringify(res.body).includes('querystring.cursor')) through.push(`${c} -> ${res.status}`);
    }
    report('monitor-invalid-cursors', cursors.length, through);
  });

  it('limit abuse is refused: pages stay at most 200 items', async () => {
    const limits = ['0', '-1', '201', '1000000000', '1e9', '1.5', 'abc', '', '50;DROP', 'Infinity', 'NaN'];
    const through: string[] = [];
    for (const l of limits) {
      const res = await list(stack.key, `limit=${encodeURIComponent(l)}`);
      if (res.status !== 400) through.push(`${l} -> ${res.status}`);
    }
    report('monitor-limit-abuse', limits.length, through);
  });
});
