import { z } from 'zod';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { PageQuery, ProblemSchema, pageOf } from '../../../schemas/api.ts';
import { CreatePrincipalBody, CreatePrincipalResponse, GroupName, PrincipalIdParam, PrincipalView, Role, UpdatePrincipalBody } from '../../../schemas/identity.ts';
import { CountersignError } from '../../errors.ts';
import { actorOf, createPrincipal, getPrincipal, listPrincipals, updatePrincipal } from '../../identity/members.ts';
import { keysetCursor, nextCursor } from '../cursor.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';

const Params = z.strictObject({ id: PrincipalIdParam });
const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema };
const notFound = (id: string) => new CountersignError('not_found', `principal ${id} not found`);

export function registerPrincipalRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post('/v1/principals', {
    onRequest: authenticated(deps, ['admin']),
    schema: { tags: ['identity'], summary: 'Add a person or an agent to your tenant (agents decide as their agent_id; acts_for lets a gateway ask for others); its first API key is shown once', body: CreatePrincipalBody, response: { 201: CreatePrincipalResponse, ...problems } },
  }, async (req, reply) => {
    const p = principalOf(req);
    const created = await createPrincipal(deps.db, p.tenant_id, req.body, actorOf(p));
    void reply.status(201);
    return created;
  });

  r.get('/v1/principals', {
    onRequest: authenticated(deps, ['admin', 'auditor']),
    schema: {
      tags: ['identity'], summary: 'List the members of your tenant',
      querystring: PageQuery.extend({ role: Role.optional(), group: GroupName.optional(), kind: z.enum(['person', 'agent']).optional() }),
      response: { 200: pageOf(PrincipalView), ...problems },
    },
  }, async (req) => {
    const q = req.query;
    const page = await listPrincipals(deps.db, principalOf(req).tenant_id, { limit: q.limit, after: keysetCursor(q.cursor), role: q.role, group: q.group, kind: q.kind });
    return { items: page.items, next_cursor: nextCursor(page.next) };
  });

  r.get('/v1/me', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['identity'], summary: 'The principal your key belongs to', response: { 200: PrincipalView, ...problems } },
  }, async (req) => {
    const p = principalOf(req);
    return (await getPrincipal(deps.db, p.tenant_id, p.id)) ?? Promise.reject(notFound(p.id));
  });

  r.get('/v1/principals/:id', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['identity'], summary: 'Read a member of your tenant (admins and auditors; anyone reads themself)', params: Params, response: { 200: PrincipalView, ...problems } },
  }, async (req) => {
    const p = principalOf(req);
    const found = await getPrincipal(deps.db, p.tenant_id, req.params.id);
    if (!found) throw notFound(req.params.id);
    if (found.id !== p.id && !p.roles.some((role) => role === 'admin' || role === 'auditor')) {
      throw new CountersignError('forbidden', 'requires one of the roles: admin, auditor');
    }
    return found;
  });

  r.patch('/v1/principals/:id', {
    onRequest: authenticated(deps, ['admin']),
    schema: { tags: ['identity'], summary: "Change a member's roles, groups, channel identities, or disable it", params: Params, body: UpdatePrincipalBody, response: { 200: PrincipalView, ...problems } },
  }, async (req) => {
    const p = principalOf(req);
    if (req.params.id === p.id && (req.body.disabled === true || (req.body.roles && !req.body.roles.includes('admin')))) {
      throw new CountersignError('conflict', 'you cannot disable yourself or drop your own admin role; ask another admin', { errors: [{ path: req.body.disabled ? 'disabled' : 'roles', message: 'would lock you out' }] });
    }
    const updated = await updatePrincipal(deps.db, p.tenant_id, req.params.id, req.body, actorOf(p));
    deps.keys?.invalidate(); // roles, groups and disabling count from the next request on, notification or not
    return updated ?? Promise.reject(notFound(req.params.id));
  });
}
