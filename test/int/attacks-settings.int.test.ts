import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestStack, type TestStack } from './harness.ts';

/**
 * Attacks on settings: duration settings of tenants and of the platform out of bounds (negative, zero, over
 * 30d, garbage, oversized); each is refused with a precise error naming the setting and changes nothing (no
 * row change, no event). Each attack prints how many attempts it made and how many got through; none may.
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
