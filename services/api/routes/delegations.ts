import { z } from 'zod';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ProblemSchema } from '../../../schemas/api.ts';
import { DelegationBody, DelegationView, grantDelegation, listDelegations, revokeDelegation } from '../../identity/delegations.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';

const Params = z.strictObject({ id: z.string().regex(/^dlg_[0-9a-f]{24}$/, 'delegation ids look like dlg_<24 hex>') });
const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema };

/** Delegations while away: an approver names another member of the same group to answer for them for a period. */
export function registerDelegationRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post('/v1/delegations', {
    onRequest: authenticated(deps, ['approver', 'admin']),
    schema: {
      tags: ['approvals'],
      summary: 'Delegate your answers for one approver group to another member of it until ends_at (admins: for a member, with from)',
      body: DelegationBody,
      response: { 201: DelegationView, ...problems },
    },
  }, async (req, reply) => {
    const created = await grantDelegation(deps.db, principalOf(req), req.body, new Date());
    void reply.status(201);
    return created;
  });

  r.get('/v1/delegations', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['approvals'], summary: 'Delegations from or to you (admins and auditors: the tenant\'s), newest first', querystring: z.strictObject({}), response: { 200: z.strictObject({ items: z.array(DelegationView) }), ...problems } },
  }, async (req) => ({ items: await listDelegations(deps.db, principalOf(req), new Date()) }));

  r.delete('/v1/delegations/:id', {
    onRequest: authenticated(deps, ['approver', 'admin']),
    schema: { tags: ['approvals'], summary: 'End a delegation now: its delegator, or an admin. The record stays.', params: Params, response: { 200: DelegationView, ...problems } },
  }, async (req) => revokeDelegation(deps.db, principalOf(req), req.params.id, new Date()));
}
