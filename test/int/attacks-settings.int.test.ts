import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Replay } from '../../services/audit/replay.ts';
import { addPrincipal, api, startTestStack, type TestStack } from './harness.ts';

/**
 * Attacks on settings: duration settings of tenants and of the platform out of bounds (negative, zero, over
 * 30d, garbage, oversized); each is refused with a precise error naming the setting and changes nothing (no
 * row change, no event); the judgment evaluator's settings changed by anyone but an admin, or with bad input,
 * record nothing, and no change records its key. Each attack prints how many attempts it made and how many got through; none may.
 */
let stack: TestStack;
const report = (name: string, attempts: number, through: string[]) => {
  console.log(`attack ${name}: ${attempts} attempts, ${through.length} got through`);
  expect(through).toEqual([]);
};
const BAD_DURATIONS = ['0s', '0h', '-1h', '-30m', '31d', '5w', '9999d', '99999999h', '1y', 'forever', '', ' 1h', '1H', '1.5h', '1e3s', 'NaN', `${'9'.repeat(5000)}h`, '1h'.repeat(30), '1h;DROP TABLE tenants'];
const BAD_TYPES: unknown[] = [-3600, 3600, null, true, ['1h'], { h: 1 }];
const TENANT_KEYS = ['approval_timeout', 'policy_activation_timeout', 'override_timeout', 'override_window'] as const;

/** The log and the settings rows: an attack that got through would change one of them. */
async function fingerprint(): Promise<string> {
  const ev = await stack.db.query<{ f: string }>("SELECT count(*)::text || '/' || coalesce(max(position)::text, '') AS f FROM events WHERE stream_id IN ('tenant/default', 'platform/settings') OR type = 'TenantCreated'");
  const row = await stack.db.query<{ s: unknown }>("SELECT settings AS s FROM tenants WHERE id = 'default'");
  return `${ev.rows[0]!.f} ${JSON.stringify(row.rows[0]!.s)}`;
}

beforeAll(async () => {
  stack = await startTestStack();
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

describe('duration settings out of bounds', () => {
  it('tenant settings (PATCH and POST /v1/tenants) and platform settings refuse them, naming the setting, and change nothing', async () => {
    const platform = { url: stack.url, key: stack.bootstrapKey };
    const before = await fingerprint();
    const through: string[] = [];
    let attempts = 0;
    for (const value of [...BAD_DURATIONS, ...BAD_TYPES]) {
      for (const key of TENANT_KEYS) {
        for (const [route, method, body, path] of [
          ['/v1/tenants/default', 'PATCH', { settings: { [key]: value } }, `body.settings.${key}`],
          ['/v1/tenants', 'POST', { id: `bounds-${attempts}`, name: 'b', settings: { policy_four_eyes: true, [key]: value } }, `body.settings.${key}`],
        ] as const) {
          attempts += 1;
          const r = await api(platform, method, route, body);
          const paths = (r.body?.errors ?? []).map((e: { path: string }) => e.path);
          if (r.status !== 400 || JSON.stringify(paths) !== JSON.stringify([path])) through.push(`${method} ${route} ${key}=${JSON.stringify(value).slice(0, 40)}: ${r.status} ${JSON.stringify(paths)}`);
        }
      }
      attempts += 1;
      const r = await api(platform, 'PATCH', '/v1/platform/settings', { policy_four_eyes: true, policy_activation_timeout: value });
      const paths = (r.body?.errors ?? []).map((e: { path: string }) => e.path);
      if (r.status !== 400 || JSON.stringify(paths) !== JSON.stringify(['body.policy_activation_timeout'])) through.push(`platform ${JSON.stringify(value).slice(0, 40)}: ${r.status} ${JSON.stringify(paths)}`);
    }
    if ((await fingerprint()) !== before) through.push('the log or the settings changed');
    report('duration settings out of bounds', attempts, through);

    const msg = await api(platform, 'PATCH', '/v1/tenants/default', { settings: { approval_timeout: '31d' } });
    expect(msg.body.errors).toEqual([{ path: 'body.settings.approval_timeout', message: 'expected a duration such as 30m, 72h or 1h30m, from 1s to 30d' }]);
  });

  it('accepts the bounds themselves, and the OpenAPI document states them', async () => {
    const ok = await api(stack, 'PATCH', '/v1/tenants/default', { settings: { approval_timeout: '30d', policy_activation_timeout: '1s', override_timeout: '1h30m', override_window: '4w' } });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.settings).toEqual({ approval_timeout: '30d', policy_activation_timeout: '1s', override_timeout: '1h30m', override_window: '4w' });
    const doc = JSON.stringify((await api(stack, 'GET', '/openapi.json')).body);
    for (const key of TENANT_KEYS) expect(doc).toMatch(new RegExp(`"${key}":\\{[^}]*at least 1s, at most 30d`));
  });
});

describe('the judgment evaluator, event-sourced', () => {
  type Changed = { tenant_id: string; before: unknown; after: unknown; by: string };
  const changes = async () => (await stack.db.query<{ data: Changed }>("SELECT data FROM events WHERE stream_id = 'tenant/default' AND type = 'EvaluatorChanged' ORDER BY position")).rows.map((r) => r.data);
  const fp = (key: string) => `sha256:${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
  const KEY1 = 'sk-first-secret-0123456789';
  const KEY2 = 'sk-second-secret-9876543210';

  it('records each set, change and removal on the tenant stream, with who, and a fingerprint in place of the key', async () => {
    const admin = await addPrincipal(stack, { name: 'eval-admin', roles: ['admin'] });
    const as = { url: stack.url, key: admin.key };
    const first = { url: 'https://8.8.8.8/v1', model: 'judge', timeout_ms: 5000 };
    expect((await api(as, 'PUT', '/v1/tenants/default/evaluator', { ...first, api_key: KEY1 })).status).toBe(200);
    expect((await api(as, 'PUT', '/v1/tenants/default/evaluator', { ...first, model: 'judge-2', api_key: KEY2 })).status).toBe(200);
    expect((await api(as, 'DELETE', '/v1/tenants/default/evaluator')).status).toBe(204);
    const one = { ...first, api_key_fingerprint: fp(KEY1) };
    const two = { ...first, model: 'judge-2', api_key_fingerprint: fp(KEY2) };
    expect(await changes()).toEqual([
      { tenant_id: 'default', before: null, after: one, by: admin.id },
      { tenant_id: 'default', before: one, after: two, by: admin.id },
      { tenant_id: 'default', before: two, after: null, by: admin.id },
    ]);
    const log = (await stack.db.query<{ t: string }>("SELECT data::text || metadata::text AS t FROM events WHERE stream_id = 'tenant/default'")).rows.map((r) => r.t).join('\n');
    for (const key of [KEY1, KEY2]) expect(log).not.toContain(key);

    // The auditor's replay folds them: no divergence on the tenant's stream, the evaluator as last recorded.
    const rows = await stack.db.query<{ e: string }>(
      `SELECT json_build_object('position', position::text, 'stream_id', stream_id, 'stream_version', stream_version, 'event_id', event_id,
         'type', type, 'schema_version', schema_version, 'tenant_id', tenant_id, 'data', data, 'metadata', metadata,
         'recorded_at', to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'prev_hash', prev_hash, 'hash', hash)::text AS e
         FROM events WHERE stream_id = 'tenant/default' ORDER BY position`,
    );
    const replay = new Replay({ keys: null, parallel: false });
    for (const row of rows.rows) replay.add({ value: row.e, where: 'postgres' });
    const rep = replay.finish();
    expect(rep.divergences).toEqual([]);
    expect(rep.memberships['default']!.evaluator).toBeNull();
  });

  it('records nothing for a change refused (not an admin, bad input, a private address, removing none)', async () => {
    const before = await changes();
    const approver = await addPrincipal(stack, { name: 'eval-approver', roles: ['approver', 'auditor'] });
    const bot = await addPrincipal(stack, { name: 'eval-bot', kind: 'agent', roles: ['agent'] });
    const good = { url: 'https://8.8.8.8/v1', model: 'judge', api_key: KEY1 };
    const through: string[] = [];
    const attempts: Array<[string, string, string, unknown]> = [
      ['approver sets', approver.key, 'PUT', good],
      ['agent sets', bot.key, 'PUT', good],
      ['approver removes', approver.key, 'DELETE', undefined],
      ['private address', stack.key, 'PUT', { ...good, url: 'https://127.0.0.1/v1' }],
      ['metadata address', stack.key, 'PUT', { ...good, url: 'http://169.254.169.254/latest' }],
      ['credentials in the url', stack.key, 'PUT', { ...good, url: 'https://user:pass@8.8.8.8/v1' }],
      ['no key', stack.key, 'PUT', { ...good, api_key: '' }],
      ['huge key', stack.key, 'PUT', { ...good, api_key: 'k'.repeat(5000) }],
      ['timeout too long', stack.key, 'PUT', { ...good, timeout_ms: 3_600_000 }],
      ['extra field', stack.key, 'PUT', { ...good, by: 'someone-else' }],
      ['remove none', stack.key, 'DELETE', undefined],
    ];
    for (const [name, key, method, body] of attempts) {
      const r = await api({ url: stack.url, key }, method, '/v1/tenants/default/evaluator', body);
      if (r.status < 400 || r.status >= 500) through.push(`${name}: ${r.status}`);
    }
    if (JSON.stringify(await changes()) !== JSON.stringify(before)) through.push('an EvaluatorChanged was recorded');
    report('evaluator changes refused', attempts.length, through);
  });
});
