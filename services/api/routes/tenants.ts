import { z } from 'zod';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { PageQuery, ProblemSchema, pageOf } from '../../../schemas/api.ts';
import { CreatePlatformAdminBody, CreatePlatformAdminResponse, PlatformAdmin, PlatformAdminParams, RevokedPlatformAdmin, CreateTenantBody, CreateTenantResponse, Tenant, UpdateTenantBody } from '../../../schemas/identity.ts';
import { CountersignError } from '../../errors.ts';
import { createTenant, getTenant, listTenants, updateTenant } from '../../identity/tenants.ts';
import { actorOf } from '../../identity/members.ts';
import { createPlatformAdmin, listPlatformAdmins, revokePlatformAdmin } from '../../identity/platform-admins.ts';
import { keysetCursor, nextCursor } from '../cursor.ts';
import { deleteEvaluator, EvaluatorSettingsBody, EvaluatorSettingsView, loadEvaluator, saveEvaluator, viewOf } from '../../judgment/evaluator-config.ts';
import { checkEvaluatorUrl } from '../../judgment/evaluator-target.ts';
import { authenticated, platformAdmin, principalOf, type ApiDeps } from '../server.ts';

const TenantParams = z.strictObject({ id: z.string().min(1).max(63) });
const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema };
const notFound = (id: string) => new CountersignError('not_found', `tenant ${id} not found`);

export function registerTenantRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post('/v1/tenants', {
    onRequest: platformAdmin(deps),
    schema: { tags: ['identity'], summary: 'Create a tenant and its first admin (platform admins); the admin key is shown once', body: CreateTenantBody, response: { 201: CreateTenantResponse, ...problems } },
  }, async (req, reply) => {
    const created = await createTenant(deps.db, req.body, actorOf(principalOf(req)));
    void reply.status(201);
    return created;
  });

  r.post('/v1/platform/admins', {
    onRequest: platformAdmin(deps),
    schema: {
      tags: ['identity'],
      summary: 'Make another platform admin (platform admins): a person in an existing tenant, with the admin, author and auditor roles there; its key is shown once',
      body: CreatePlatformAdminBody,
      response: { 201: CreatePlatformAdminResponse, ...problems },
    },
  }, async (req, reply) => {
    const created = await createPlatformAdmin(deps.db, req.body, actorOf(principalOf(req)));
    void reply.status(201);
    return created;
  });

  r.get('/v1/platform/admins', {
    onRequest: platformAdmin(deps),
    schema: { tags: ['identity'], summary: 'List the platform admins, enabled or not (platform admins)', response: { 200: z.strictObject({ items: z.array(PlatformAdmin) }), ...problems } },
  }, async (req) => ({ items: await listPlatformAdmins(deps.db, actorOf(principalOf(req))) }));

  r.delete('/v1/platform/admins/:tenant_id/:principal_id', {
    onRequest: platformAdmin(deps),
    schema: {
      tags: ['identity'],
      summary: "Take the platform flag from a platform admin (platform admins): it stays a member of its tenant with its roles there; never the last enabled one (409)",
      params: PlatformAdminParams,
      response: { 200: RevokedPlatformAdmin, ...problems },
    },
  }, async (req) => {
    await revokePlatformAdmin(deps.db, req.params.tenant_id, req.params.principal_id, actorOf(principalOf(req)));
    deps.keys?.invalidate(); // its keys lose the flag from the next request on, notification or not
    return { principal_id: req.params.principal_id, tenant_id: req.params.tenant_id, platform_admin: false as const };
  });

  r.get('/v1/tenants', {
    onRequest: platformAdmin(deps),
    schema: { tags: ['identity'], summary: 'List every tenant (platform admins)', querystring: PageQuery, response: { 200: pageOf(Tenant), ...problems } },
  }, async (req) => {
    const page = await listTenants(deps.db, { limit: req.query.limit, after: keysetCursor(req.query.cursor) });
    return { items: page.items, next_cursor: nextCursor(page.next) };
  });

  // Another tenant's id is "not found" for everyone but platform admins, never "forbidden".
  const visible = (req: Parameters<typeof principalOf>[0], id: string) => {
    const p = principalOf(req);
    if (!p.platform_admin && p.tenant_id !== id) throw notFound(id);
  };

  r.get('/v1/tenants/:id', {
    onRequest: authenticated(deps, ['admin', 'auditor']),
    schema: { tags: ['identity'], summary: 'Read a tenant and its settings (its admins and auditors; platform admins)', params: TenantParams, response: { 200: Tenant, ...problems } },
  }, async (req) => {
    visible(req, req.params.id);
    return (await getTenant(deps.db, req.params.id)) ?? Promise.reject(notFound(req.params.id));
  });

  r.patch('/v1/tenants/:id', {
    onRequest: authenticated(deps, ['admin']),
    schema: { tags: ['identity'], summary: "Change a tenant's name, default decision or settings (its admins; platform admins)", params: TenantParams, body: UpdateTenantBody, response: { 200: Tenant, ...problems } },
  }, async (req) => {
    visible(req, req.params.id);
    return (await updateTenant(deps.db, req.params.id, req.body, actorOf(principalOf(req)))) ?? Promise.reject(notFound(req.params.id));
  });

  // The tenant's evaluator for judgment rules. The API key is write-only: no answer carries it.
  r.put('/v1/tenants/:id/evaluator', {
    onRequest: authenticated(deps, ['admin']),
    schema: {
      tags: ['identity'],
      summary: "Set the tenant's evaluator for judgment rules: an OpenAI-compatible chat-completions endpoint (its admins)",
      params: TenantParams, body: EvaluatorSettingsBody, response: { 200: EvaluatorSettingsView, 422: ProblemSchema, ...problems },
    },
  }, async (req) => {
    visible(req, req.params.id);
    const check = await checkEvaluatorUrl(req.body.url, { allowHosts: deps.config.COUNTERSIGN_EVALUATOR_ALLOW_HOSTS });
    if (!check.ok) throw new CountersignError('unprocessable', check.reason, { errors: [{ path: 'body.url', message: check.reason }] });
    return viewOf(await saveEvaluator(deps.db, req.params.id, req.body, principalOf(req).id));
  });

  r.get('/v1/tenants/:id/evaluator', {
    onRequest: authenticated(deps, ['admin', 'auditor']),
    schema: { tags: ['identity'], summary: "Read the tenant's evaluator settings, without its key", params: TenantParams, response: { 200: EvaluatorSettingsView, ...problems } },
  }, async (req) => {
    visible(req, req.params.id);
    const s = await loadEvaluator(deps.db, req.params.id);
    if (s === null) throw new CountersignError('not_found', `tenant ${req.params.id} has no evaluator`);
    return viewOf(s);
  });

  r.delete('/v1/tenants/:id/evaluator', {
    onRequest: authenticated(deps, ['admin']),
    schema: { tags: ['identity'], summary: "Remove the tenant's evaluator: judgment rules go to people only", params: TenantParams, response: { 204: z.null(), ...problems } },
  }, async (req, reply) => {
    visible(req, req.params.id);
    if (!(await deleteEvaluator(deps.db, req.params.id, principalOf(req).id))) throw new CountersignError('not_found', `tenant ${req.params.id} has no evaluator`);
    return reply.status(204).send(null);
  });
}
