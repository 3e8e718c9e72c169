import { describe, expect, it } from 'vitest';
import { clearedSessionCookie, csrfMatches, csrfTokenOf, sessionCookie, sessionCookieOf } from '../../services/console/sessions.ts';

describe('console session cookie and CSRF token', () => {
  const id = `css_${'A'.repeat(43)}`;

  it('the cookie is HttpOnly, SameSite=Strict, Secure only over HTTPS', () => {
    expect(sessionCookie(id, false, 60)).toBe(`cs_session=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=60`);
    expect(sessionCookie(id, true, 60)).toMatch(/; Secure$/);
    expect(clearedSessionCookie(true)).toBe('cs_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure');
  });

  it('reads the session cookie among others, and nothing from look-alike names', () => {
    expect(sessionCookieOf(`a=1; cs_session=${id}; b=2`)).toBe(id);
    expect(sessionCookieOf('xcs_session=1; cs_sessionx=2')).toBeNull();
    expect(sessionCookieOf(undefined)).toBeNull();
  });

  it('the CSRF token is bound to its session and compared whole', () => {
    const token = csrfTokenOf(id);
    expect(token).not.toContain(id);
    expect(csrfMatches(id, token)).toBe(true);
    expect(csrfMatches(`css_${'B'.repeat(43)}`, token)).toBe(false);
    for (const bad of [undefined, '', token.slice(0, -1), `${token}x`, ['x'], id]) expect(csrfMatches(id, bad)).toBe(false);
  });
});
