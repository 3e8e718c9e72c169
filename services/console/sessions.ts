// Console sessions: an API key exchanged once for a server-side session. The browser holds only a random id
// in an HttpOnly cookie; Postgres holds only that id's SHA-256. Every request re-reads the session with the
// key and member it came from, so a revoked or expired key, or a disabled member, ends it at once.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { withSystem, withTenant, type Db } from '../events/db.ts';
import type { Principal } from '../identity/principals.ts';

export const SESSION_COOKIE = 'cs_session';
export const CSRF_HEADER = 'x-csrf-token';
const SESSION_ID = /^css_[A-Za-z0-9_-]{43}$/;

export type SessionLimits = { idleSec: number; maxAgeSec: number };
export type Session = { principal: Principal; csrfToken: string; expiresAt: Date; idleExpiresAt: Date };

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * The session's CSRF token: derived from the session id (never stored), so only a holder of the cookie's value
 * (the server, reading the cookie) can name it, and a copy of the table cannot.
 */
export function csrfTokenOf(sessionId: string): string {
  return createHash('sha256').update(`countersign console csrf\0${sessionId}`).digest('base64url');
}

export function csrfMatches(sessionId: string, presented: unknown): boolean {
  if (typeof presented !== 'string') return false;
  const want = Buffer.from(csrfTokenOf(sessionId));
  const got = Buffer.from(presented);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Opens a session for a principal authenticated by its key; answers the id (for the cookie only). */
export async function openSession(db: Db, principal: Principal, limits: SessionLimits, now = new Date()): Promise<{ id: string; session: Session }> {
  const id = `css_${randomBytes(32).toString('base64url')}`;
  const expiresAt = new Date(now.getTime() + limits.maxAgeSec * 1000);
  await withTenant(db, principal.tenant_id, (c) => c.query(
    'INSERT INTO console_sessions (id_hash, tenant_id, principal_id, key_prefix, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $5, $6)',
    [sha256(id), principal.tenant_id, principal.id, principal.key_prefix, now, expiresAt],
  ));
  return { id, session: { principal, csrfToken: csrfTokenOf(id), expiresAt, idleExpiresAt: idleEnd(now, expiresAt, limits) } };
}

const idleEnd = (seen: Date, expiresAt: Date, limits: SessionLimits) => new Date(Math.min(seen.getTime() + limits.idleSec * 1000, expiresAt.getTime()));

type Row = Omit<Principal, 'key_prefix'> & { key_prefix: string; expires_at: Date };

/**
 * The live session of a cookie value, its idle clock restarted; null for a malformed, unknown, ended, idle or
 * expired session, or one whose key or member no longer authenticates. The tenant is not known until the
 * session is found, so the lookup runs in the `authenticate` scope, by the id's hash and nothing else.
 */
export async function resumeSession(db: Db, id: string, limits: SessionLimits, now = new Date()): Promise<Session | null> {
  if (!SESSION_ID.test(id)) return null;
  const res = await withSystem(db, 'authenticate', (c) => c.query<Row>(
    `UPDATE console_sessions s SET last_seen_at = $2
       FROM principals p, api_keys k
      WHERE s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND s.last_seen_at > $2::timestamptz - make_interval(secs => $3)
        AND p.id = s.principal_id AND p.tenant_id = s.tenant_id AND p.disabled_at IS NULL
        AND k.prefix = s.key_prefix AND k.tenant_id = s.tenant_id AND k.principal_id = s.principal_id
        AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2)
     RETURNING p.id, p.tenant_id, p.name, p.kind, p.roles, p.groups, p.platform_admin, s.key_prefix, s.expires_at`,
    [sha256(id), now, limits.idleSec],
  ));
  const row = res.rows[0];
  if (!row) return null;
  const { expires_at: expiresAt, ...principal } = row;
  return { principal, csrfToken: csrfTokenOf(id), expiresAt, idleExpiresAt: idleEnd(now, expiresAt, limits) };
}

/**
 * The principal of a live session, without counting as activity (last_seen_at unchanged): for a stream that
 * re-checks its session while open, so that an open tab alone never keeps a session from idling out.
 */
export async function peekSession(db: Db, id: string, limits: SessionLimits, now = new Date()): Promise<Principal | null> {
  if (!SESSION_ID.test(id)) return null;
  const res = await withSystem(db, 'authenticate', (c) => c.query<Principal>(
    `SELECT p.id, p.tenant_id, p.name, p.kind, p.roles, p.groups, p.platform_admin, p.agent_id, p.acts_for, s.key_prefix
       FROM console_sessions s, principals p, api_keys k
      WHERE s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND s.last_seen_at > $2::timestamptz - make_interval(secs => $3)
        AND p.id = s.principal_id AND p.tenant_id = s.tenant_id AND p.disabled_at IS NULL
        AND k.prefix = s.key_prefix AND k.tenant_id = s.tenant_id AND k.principal_id = s.principal_id
        AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2)`,
    [sha256(id), now, limits.idleSec],
  ));
  return res.rows[0] ?? null;
}

/** Ends a session (sign-out): its cookie authenticates nothing from now on. */
export async function endSession(db: Db, tenantId: string, id: string): Promise<void> {
  await withTenant(db, tenantId, (c) => c.query('UPDATE console_sessions SET ended_at = now() WHERE id_hash = $1 AND ended_at IS NULL', [sha256(id)]));
}

/** The session cookie's value in a Cookie header, or null. */
export function sessionCookieOf(header: string | undefined): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return null;
}

export function sessionCookie(id: string, secure: boolean, maxAgeSec: number): string {
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSec}${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}
