import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { DecisionListQuery, DecisionSummary, ProblemSchema, pageOf } from '../../../schemas/api.ts';
import { listDecisions } from '../../decisions/list-decisions.ts';
import { encodeCursor, positionCursor } from '../cursor.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';
import { readsOnlyOwn } from '../../identity/agent-binding.ts';

const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema };

export function registerDecisionListRoute(app: FastifyInstance, deps: ApiDeps): void {
  app.withTypeProvider<ZodTypeProvider>().get('/v1/decisions', {
    onRequest: authenticated(deps, []),
    schema: {
      tags: ['decisions'],
      summary: "List your tenant's decisions, newest first (an agent sees the ones it asked for)",
      querystring: DecisionListQuery,
      response: { 200: pageOf(DecisionSummary), ...problems },
    },
  }, async (req) => {
    const p = principalOf(req);
    const onlyOwn = readsOnlyOwn(p);
    const q = req.query;
    const page = await listDecisions(deps.db, p.tenant_id, { limit: q.limit, before: positionCursor(q.cursor), status: q.status, agent: q.agent, requestedBy: onlyOwn ? p.id : undefined });
    return { items: page.items, next_cursor: page.next ? encodeCursor({ p: page.next }) : null };
  });
}
