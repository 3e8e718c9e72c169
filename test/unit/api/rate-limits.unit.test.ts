import { describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { trustProxyOption } from '../../../services/api/server.ts';
import { redactUrl, scrubSecrets } from '../../../services/log-redaction.ts';
import { clientAddressKey, RateBuckets } from '../../../services/api/rate-buckets.ts';
import { trustProxySetting } from '../../../services/config.ts';

describe('rate buckets', () => {
  it('allows max hits per window, then refuses until the window ends', () => {
    let now = 1_000;
    const b = new RateBuckets(3, 10_000, 100, () => now);
    expect([1, 2, 3, 4].map(() => b.hit('k').allowed)).toEqual([true, true, true, false]);
    expect(b.hit('k').retryAfterMs).toBe(10_000);
    now += 10_000;
    expect(b.hit('k').allowed).toBe(true);
  });
  it('keeps at most maxKeys buckets, dropping the oldest window first', () => {
    const b = new RateBuckets(1, 60_000, 10);
    for (let i = 0; i < 1_000; i++) b.hit(`k${i}`);
    expect(b.size).toBe(10);
  });
  it('keys IPv4 (also IPv4-mapped) by address and IPv6 by its /64', () => {
    expect(clientAddressKey('203.0.113.9')).toBe('addr:203.0.113.9');
    expect(clientAddressKey('::ffff:203.0.113.9')).toBe('addr:203.0.113.9');
    expect(clientAddressKey('2001:db8:1:2::1')).toBe(clientAddressKey('2001:db8:1:2:ffff:ffff:ffff:fffe'));
    expect(clientAddressKey('2001:db8:1:2::1')).not.toBe(clientAddressKey('2001:db8:1:3::1'));
  });
});

describe('COUNTERSIGN_TRUST_PROXY', () => {
  it('is off by default, a hop count, or proxy addresses; anything else is refused', () => {
    expect(trustProxySetting('false')).toBe(false);
    expect(trustProxySetting('true')).toBe(true);
    expect(trustProxySetting('2')).toBe(2);
    expect(trustProxySetting('10.0.0.1, 10.1.0.0/16, fd00::/8')).toEqual(['10.0.0.1', '10.1.0.0/16', 'fd00::/8']);
    expect(trustProxySetting('yes please')).toBeUndefined();
  });
});

describe('log redaction', () => {
  const token = 'A'.repeat(20) + '_-' + 'b'.repeat(21);
  const key = `cs_abcdefghij12_${'Z'.repeat(43)}`;
  it('replaces emailed link tokens and secret-named query values in logged URLs', () => {
    expect(redactUrl(`/v1/email-approvals/${token}`)).toBe('/v1/email-approvals/[redacted]');
    expect(redactUrl(`/v1/email-approvals/${token}?x=1`)).toBe('/v1/email-approvals/[redacted]?x=1');
    expect(redactUrl(`/v1/me?api_key=${key}&wait=3`)).toBe('/v1/me?api_key=[redacted]&wait=3');
    expect(redactUrl('/v1/decisions?status=final')).toBe('/v1/decisions?status=final');
  });
  it('scrubs keys, link tokens and bearer credentials from any line', () => {
    const line = JSON.stringify({ msg: `failed for ${key}`, url: `https://x/v1/email-approvals/${token}`, h: `Bearer ${key}` });
    const out = scrubSecrets(line);
    expect(out).not.toContain(key);
    expect(out).not.toContain(token);
    expect(out).not.toContain('Zzz');
  });
});

describe('the client address behind proxies', () => {
  const ipSeen = async (setting: string, remoteAddress: string, forwarded?: string) => {
    const app = Fastify({ trustProxy: trustProxyOption(trustProxySetting(setting)!) });
    app.get('/', async (req) => req.ip);
    const res = await app.inject({ url: '/', remoteAddress, headers: forwarded ? { 'x-forwarded-for': forwarded } : {} });
    await app.close();
    return res.body;
  };
  it('ignores X-Forwarded-For by default, and trusts only the hops or proxies configured', async () => {
    expect(await ipSeen('false', '10.0.0.2', '203.0.113.5')).toBe('10.0.0.2');
    expect(await ipSeen('1', '10.0.0.2', '198.51.100.1, 203.0.113.5')).toBe('203.0.113.5');
    expect(await ipSeen('10.0.0.0/8', '10.0.0.2', '198.51.100.1, 203.0.113.5')).toBe('203.0.113.5');
    expect(await ipSeen('10.0.0.0/8', '192.0.2.9', '203.0.113.5')).toBe('192.0.2.9');
  });
});
