import { z } from 'zod';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { PageQuery, ProblemSchema, pageOf } from '../../../schemas/api.ts';
import { CreateTenantBody, CreateTenantResponse, Tenant, UpdateTenantBody } from '../../../schemas/identity.ts';
import { CountersignError } from '../../errors.ts';
import { createTenant, getTenant, listTenants, updateTenant } from '../../identity/tenants.ts';
import { actorOf } from '../../identity/members.ts';
import { keysetCursor, nextCursor } from '../cursor.ts';
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
}
