import { z } from 'zod';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { PageQuery, ProblemSchema, pageOf } from '../../../schemas/api.ts';
import { ApiKeyIdParam, ApiKeyView, CreateApiKeyBody, CreateApiKeyResponse, PrincipalIdParam } from '../../../schemas/identity.ts';
import { CountersignError } from '../../errors.ts';
import { createApiKey, getApiKey, listApiKeys, revokeApiKey } from '../../identity/key-management.ts';
import type { Principal } from '../../identity/principals.ts';
import { actorOf } from '../../identity/members.ts';
import { keysetCursor, nextCursor } from '../cursor.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';

// `/v1/keys` serves the public receipt-signing keys; API keys are managed here.
const Params = z.strictObject({ id: ApiKeyIdParam });
const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema };
const isAdmin = (p: Principal) => p.roles.includes('admin');
const canReadAll = (p: Principal) => p.roles.includes('admin') || p.roles.includes('auditor');

export function registerApiKeyRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post('/v1/api-keys', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['identity'], summary: 'Create an API key for yourself, or (admins) for a member; shown once', body: CreateApiKeyBody, response: { 201: CreateApiKeyResponse, ...problems } },
  }, async (req, reply) => {
    const p = principalOf(req);
    const principalId = req.body.principal_id ?? p.id;
    if (principalId !== p.id && !isAdmin(p)) throw new CountersignError('forbidden', 'only admins create keys for other members');
    const now = new Date();
    if (req.body.expires_at && new Date(req.body.expires_at) <= now) {
      throw new CountersignError('validation_failed', 'expires_at is in the past', { errors: [{ path: 'body.expires_at', message: 'must be in the future' }] });
    }
    const created = await createApiKey(deps.db, p.tenant_id, { principalId, name: req.body.name, expiresAt: req.body.expires_at, now, actor: actorOf(p) });
    if (!created) throw new CountersignError('not_found', `principal ${principalId} not found`);
    void reply.status(201);
    return created;
  });

  r.get('/v1/api-keys', {
    onRequest: authenticated(deps, []),
    schema: {
      tags: ['identity'], summary: 'List API keys (prefixes only): your own, or (admins, auditors) the whole tenant',
      querystring: PageQuery.extend({ principal_id: PrincipalIdParam.optional() }),
      response: { 200: pageOf(ApiKeyView), ...problems },
    },
  }, async (req) => {
    const p = principalOf(req);
    const only = canReadAll(p) ? req.query.principal_id : p.id;
    if (!canReadAll(p) && req.query.principal_id !== undefined && req.query.principal_id !== p.id) {
      throw new CountersignError('forbidden', 'only admins and auditors list the keys of other members');
    }
    const page = await listApiKeys(deps.db, p.tenant_id, { limit: req.query.limit, after: keysetCursor(req.query.cursor), principalId: only, now: new Date() });
    return { items: page.items, next_cursor: nextCursor(page.next) };
  });

  r.delete('/v1/api-keys/:id', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['identity'], summary: 'Revoke an API key: your own, or (admins) any of the tenant. The record stays.', params: Params, response: { 200: ApiKeyView, ...problems } },
  }, async (req) => {
    const p = principalOf(req);
    const now = new Date();
    const key = await getApiKey(deps.db, p.tenant_id, req.params.id, now);
    if (!key) throw new CountersignError('not_found', `API key ${req.params.id} not found`);
    if (key.principal_id !== p.id && !isAdmin(p)) throw new CountersignError('forbidden', "only admins revoke other members' keys");
    const revoked = await revokeApiKey(deps.db, p.tenant_id, req.params.id, now, actorOf(p));
    if (!revoked) throw new CountersignError('not_found', `API key ${req.params.id} not found`);
    deps.keys?.invalidate(); // this process refuses the key from the next request on, notification or not
    return revoked;
  });
}
