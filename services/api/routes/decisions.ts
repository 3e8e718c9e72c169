import { z } from 'zod';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { DecisionRequest, DecisionResult } from '../../../schemas/decision.ts';
import { requestDecision } from '../../decisions/request-decision.ts';
import { waitForDecision } from '../../decisions/read-decision.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';

const Problem = z.looseObject({ type: z.string(), title: z.string(), status: z.number(), code: z.string(), detail: z.string() });
const DecisionIdParams = z.strictObject({ id: z.string().regex(/^dec_[0-9a-f]{32}$/, 'decision ids look like dec_<32 hex>') });

export function registerDecisionRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post('/v1/decisions', {
    onRequest: authenticated(deps, ['agent']),
    schema: {
      tags: ['decisions'],
      summary: 'Ask for a decision before a tool call',
      body: DecisionRequest,
      response: { 200: DecisionResult, 400: Problem, 401: Problem, 403: Problem, 422: Problem, 503: Problem },
    },
  }, async (req) => {
    const principal = principalOf(req);
    return requestDecision({ db: deps.db, temporal: deps.temporal, taskQueue: deps.config.COUNTERSIGN_TASK_QUEUE, policies: deps.policies }, principal, req.body);
  });

  r.get('/v1/decisions/:id', {
    onRequest: authenticated(deps, []),
    schema: {
      tags: ['decisions'],
      summary: 'Read a decision; with ?wait=N, long-poll until it is final or N seconds pass',
      params: DecisionIdParams,
      querystring: z.strictObject({ wait: z.coerce.number().int().min(0).max(120).default(0) }),
      response: { 200: DecisionResult, 401: Problem, 404: Problem, 503: Problem },
    },
  }, async (req) => {
    const principal = principalOf(req);
    return waitForDecision(deps, principal.tenant_id, req.params.id, req.query.wait);
  });
}
