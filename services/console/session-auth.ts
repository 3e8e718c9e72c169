import type { FastifyRequest } from 'fastify';
import { CountersignError } from '../errors.ts';
import type { Db } from '../events/db.ts';
import type { Principal } from '../identity/principals.ts';
import type { Config } from '../config.ts';
import { CSRF_HEADER, csrfMatches, resumeSession, sessionCookieOf, type Session, type SessionLimits } from './sessions.ts';

declare module 'fastify' {
  interface FastifyRequest {
    consoleSession?: { id: string; session: Session };
  }
}

export const sessionLimits = (config: Config): SessionLimits => ({ idleSec: config.COUNTERSIGN_CONSOLE_IDLE, maxAgeSec: config.COUNTERSIGN_CONSOLE_MAX_AGE });

/** Methods that change nothing: every other one needs the session's CSRF token in its header. */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The principal of a request's console session cookie (the same principal its key would give), or a refusal:
 * 401 without a live session, 403 for a change without the session's CSRF token.
 */
export async function sessionPrincipal(deps: { db: Db; config: Config }, req: FastifyRequest): Promise<Principal | null> {
  const id = sessionCookieOf(req.headers.cookie);
  if (!id) throw new CountersignError('unauthorized', 'missing Authorization: Bearer <api key> (or a console session)');
  const session = await resumeSession(deps.db, id, sessionLimits(deps.config));
  if (!session) throw new CountersignError('unauthorized', 'the console session has ended, expired or was never opened: sign in again');
  if (!SAFE.has(req.method) && !csrfMatches(id, req.headers[CSRF_HEADER])) {
    throw new CountersignError('forbidden', `a change through a console session needs the session's ${CSRF_HEADER} header`);
  }
  req.consoleSession = { id, session };
  return session.principal;
}
