import { describe, expect, it } from 'vitest';
import { PlatformSettings, RecordedPlatformSettings, RecordedTenantSettings, TenantSettings, UpdateTenantBody } from '../../../schemas/identity.ts';
import { TenantChangedData } from '../../../schemas/events.ts';

// Duration settings are bounded on write (1s to 30d) and accepted as recorded on read, so old events still parse.

const DURATION_KEYS = ['approval_timeout', 'policy_activation_timeout', 'override_timeout', 'override_window'] as const;
const BAD = ['0s', '0h', '-1h', '1h-', '31d', '5w', '9999d', '1y', 'forever', '', ' 1h', '1h ', '1H', '1.5h', 'NaN', `${'9'.repeat(50)}s`, '1h'.repeat(30)];
const GOOD: [string, number][] = [['1s', 1], ['90s', 90], ['30m', 1800], ['1h30m', 5400], ['72h', 259_200], ['4w', 2_419_200], ['30d', 2_592_000]];

describe('duration settings', () => {
  it('refuses durations that are not positive, not durations, or over 30d, naming the setting', () => {
    for (const key of DURATION_KEYS) {
      for (const value of BAD) {
        const r = UpdateTenantBody.safeParse({ settings: { [key]: value } });
        expect(r.success, `${key}: ${value}`).toBe(false);
        expect(r.error!.issues.map((i) => i.path.join('.'))).toEqual([`settings.${key}`]);
      }
      for (const value of [42, null, ['1h'], { h: 1 }]) expect(TenantSettings.safeParse({ [key]: value }).success).toBe(false);
    }
    for (const value of BAD) expect(PlatformSettings.safeParse({ policy_activation_timeout: value }).success, value).toBe(false);
    expect(UpdateTenantBody.safeParse({ settings: { override_timeout: '31d' } }).error!.issues[0]!.message).toBe('expected a duration such as 30m, 72h or 1h30m, from 1s to 30d');
  });

  it('accepts 1s to 30d in the duration grammar', () => {
    for (const key of DURATION_KEYS) for (const [value] of GOOD) expect(TenantSettings.parse({ [key]: value })).toEqual({ [key]: value });
    for (const [value] of GOOD) expect(PlatformSettings.parse({ policy_activation_timeout: value })).toEqual({ policy_activation_timeout: value });
  });

  it('reads what was recorded before the bounds (events, stored rows)', () => {
    const old = { policy_four_eyes: true, policy_activation_timeout: '9999d' };
    expect(RecordedTenantSettings.parse(old)).toEqual(old);
    expect(RecordedPlatformSettings.parse(old)).toEqual(old);
    const config = { name: 't', default_decision: 'DENY', settings: old };
    expect(TenantChangedData.safeParse({ tenant_id: 't', before: config, after: config, by: 'prn_x' }).success).toBe(true);
  });
});
