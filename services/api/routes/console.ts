import { z } from 'zod';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { EventData } from '../../../schemas/events.ts';
import { ProblemSchema } from '../../../schemas/api.ts';
import { CountersignError } from '../../errors.ts';
import { isConnectionError, withTenant } from '../../events/db.ts';
import { readStream } from '../../events/read-events.ts';
import { runStreamId } from '../../events/stream-ids.ts';
import { authenticate } from '../../identity/principals.ts';
import { asSigned, buildReceipt } from '../../receipts/build-receipt.ts';
import { loadPublicKeys } from '../../receipts/keyring.ts';
import { verifyReceipt } from '../../receipts/verify.ts';
import { clearedSessionCookie, openSession, endSession, sessionCookie } from '../../console/sessions.ts';
import { sessionLimits } from '../../console/session-auth.ts';
import { mintSignInLink, redeemSignInLink } from '../../console/sign-in-links.ts';
import { serveConsole } from '../../console/static.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';

const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema };
const SessionView = z.strictObject({
  principal: z.strictObject({ id: z.string(), tenant_id: z.string(), name: z.string(), kind: z.enum(['person', 'agent']), roles: z.array(z.string()), groups: z.array(z.string()) }),
  csrf_token: z.string().describe('Send it as the x-csrf-token header with every change made through this session.'),
  expires_at: z.string().describe('When the session ends however active it is.'),
  idle_expires_at: z.string().describe('When it ends unless used before.'),
});
const DecisionIdParams = z.strictObject({ id: z.string().regex(/^dec_[0-9a-f]{32}$/, 'decision ids look like dec_<32 hex>') });
const TimelineEvent = z.strictObject({
  stream_version: z.number(), type: z.string(), recorded_at: z.string(), actor: z.string().nullable(), channel: z.string().nullable(),
  data: z.record(z.string(), z.unknown()), prev_hash: z.string().nullable(), hash: z.string(),
});
const Timeline = z.strictObject({
  decision_id: z.string(),
  items: z.array(TimelineEvent),
  chain_linked: z.boolean().describe("Every event names the previous event's hash."),
  receipt: z.strictObject({
    issued: z.boolean(),
    verification: z.strictObject({ ok: z.boolean(), key_id: z.string().nullable(), key_status: z.string().nullable(), reason: z.string().nullable(), detail: z.string().nullable() }).nullable(),
    signature_key_id: z.string().nullable(),
  }),
});

const secure = (req: FastifyRequest) => req.protocol === 'https';
const view = (s: { principal: { id: string; tenant_id: string; name: string; kind: 'person' | 'agent'; roles: string[]; groups: string[] }; csrfToken: string; expiresAt: Date; idleExpiresAt: Date }) => ({
  principal: { id: s.principal.id, tenant_id: s.principal.tenant_id, name: s.principal.name, kind: s.principal.kind, roles: s.principal.roles, groups: s.principal.groups },
  csrf_token: s.csrfToken, expires_at: s.expiresAt.toISOString(), idle_expires_at: s.idleExpiresAt.toISOString(),
});

/**
 * The web console: its static pages at / (strict CSP), sessions opened with an API key, and the run timeline
 * the console shows (also for API clients).
 */
export function registerConsoleRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const limits = sessionLimits(deps.config);

  r.post('/v1/console/sessions', {
    schema: {
      tags: ['console'], summary: 'Sign in to the console: an API key exchanged for a session cookie (HttpOnly, SameSite=Strict)', security: [],
      body: z.strictObject({ api_key: z.string().min(1).max(200) }),
      response: { 201: SessionView, ...problems },
    },
  }, async (req, reply) => {
    let principal;
    try {
      principal = await authenticate(deps.db, req.body.api_key, new Date(), deps.keys?.lookup);
    } catch (err) {
      throw isConnectionError(err) ? CountersignError.dependency('postgres', err) : err;
    }
    if (!principal) throw new CountersignError('unauthorized', 'invalid, revoked or expired API key');
    // Agents act through the API with their key; the console is for people.
    if (principal.kind !== 'person') throw new CountersignError('forbidden', 'only people sign in to the console; agents use their key with the API');
    const { id, session } = await openSession(deps.db, principal, limits);
    void reply.header('set-cookie', sessionCookie(id, secure(req), limits.maxAgeSec)).header('cache-control', 'no-store');
    return reply.status(201).send(view(session));
  });

  r.post('/v1/console/links', {
    onRequest: authenticated(deps, []),
    schema: {
      tags: ['console'], summary: 'A one-time console sign-in link for the key\'s own person (countersign login --web): short-lived, single use, minted only with an API key',
      body: z.strictObject({}).nullish(),
      response: {
        201: z.strictObject({
          path: z.string().describe('Open it on this API\'s origin; the token sits in the fragment, so it is never sent in a request line or a Referer.'),
          token: z.string(), expires_at: z.string(),
        }),
        ...problems,
      },
    },
  }, async (req, reply) => {
    const p = principalOf(req);
    // A session minting links would outlive its own absolute expiry: only the key's holder mints.
    if (req.consoleSession) throw new CountersignError('forbidden', 'sign-in links are minted with an API key, not from a console session');
    if (p.kind !== 'person') throw new CountersignError('forbidden', 'only people sign in to the console; agents use their key with the API');
    const link = await mintSignInLink(deps.db, p, deps.config.COUNTERSIGN_CONSOLE_LINK_TTL);
    void reply.header('cache-control', 'no-store');
    return reply.status(201).send({ path: `/sign-in#link=${link.token}`, token: link.token, expires_at: link.expiresAt.toISOString() });
  });

  r.post('/v1/console/links/redeem', {
    schema: {
      tags: ['console'], summary: 'Open a console session with a one-time sign-in link (spent by its first use, whatever the outcome)', security: [],
      body: z.strictObject({ token: z.string().min(1).max(200) }),
      response: { 201: SessionView, ...problems },
    },
  }, async (req, reply) => {
    let principal;
    try {
      principal = await redeemSignInLink(deps.db, req.body.token);
    } catch (err) {
      throw isConnectionError(err) ? CountersignError.dependency('postgres', err) : err;
    }
    if (!principal) throw new CountersignError('unauthorized', 'the sign-in link is unknown, spent or expired: run countersign login --web again');
    const { id, session } = await openSession(deps.db, principal, limits);
    void reply.header('set-cookie', sessionCookie(id, secure(req), limits.maxAgeSec)).header('cache-control', 'no-store');
    return reply.status(201).send(view(session));
  });

  r.get('/v1/console/session', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['console'], summary: 'The console session of this cookie, with its CSRF token', response: { 200: SessionView, ...problems } },
  }, async (req, reply) => {
    const s = req.consoleSession;
    if (!s) throw new CountersignError('not_found', 'this request carries an API key, not a console session');
    void reply.header('cache-control', 'no-store');
    return view(s.session);
  });

  r.delete('/v1/console/session', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['console'], summary: 'Sign out: ends the console session', response: { 204: z.null(), ...problems } },
  }, async (req, reply) => {
    const s = req.consoleSession;
    if (!s) throw new CountersignError('not_found', 'this request carries an API key, not a console session');
    await endSession(deps.db, s.session.principal.tenant_id, s.id);
    return reply.status(204).header('set-cookie', clearedSessionCookie(secure(req))).send(null);
  });

  r.get('/v1/decisions/:id/events', {
    onRequest: authenticated(deps, []),
    schema: {
      tags: ['decisions'], summary: "A run's events in order, its hash chain's linkage and its receipt's verification (an agent sees only its own runs)",
      params: DecisionIdParams, response: { 200: Timeline, ...problems },
    },
  }, async (req) => {
    const p = principalOf(req);
    const id = req.params.id;
    const events = await withTenant(deps.db, p.tenant_id, (c) => readStream(c, runStreamId(id)));
    const first = events[0];
    const onlyOwn = p.roles.every((role) => role === 'agent');
    if (!first || first.tenant_id !== p.tenant_id || (onlyOwn && (first.data as { requested_by?: string }).requested_by !== p.id)) {
      throw new CountersignError('not_found', `decision ${id} not found`);
    }
    const issued = events.filter((e) => e.type === 'ReceiptIssued').pop();
    let verification = null;
    let keyId: string | null = null;
    if (issued) {
      const d = issued.data as EventData<'ReceiptIssued'>;
      keyId = (d.signature as { key_id?: string }).key_id ?? null;
      const rebuilt = buildReceipt(events.filter((e) => e.stream_version <= d.head_version));
      const receipt = rebuilt && asSigned(rebuilt, d.receipt_digest);
      const result = receipt
        ? verifyReceipt({ receipt, signature: d.signature }, await loadPublicKeys(deps.config.keysDir))
        : { ok: false as const, reason: 'mismatch', detail: 'the receipt does not rebuild from the log' };
      verification = result.ok
        ? { ok: true, key_id: result.key_id, key_status: result.key_status, reason: null, detail: null }
        : { ok: false, key_id: null, key_status: null, reason: result.reason, detail: result.detail };
    }
    const str = (v: unknown) => (typeof v === 'string' ? v : null);
    return {
      decision_id: id,
      items: events.map((e) => ({
        stream_version: e.stream_version, type: e.type, recorded_at: e.recorded_at, data: e.data, prev_hash: e.prev_hash, hash: e.hash,
        actor: str(e.data['approver_id']) ?? str(e.data['requested_by']) ?? str(e.metadata['actor']),
        channel: str(e.data['channel']),
      })),
      chain_linked: events.every((e, i) => i === 0 || e.prev_hash === events[i - 1]!.hash),
      receipt: { issued: Boolean(issued), verification, signature_key_id: keyId },
    };
  });

  serveConsole(app);
}
