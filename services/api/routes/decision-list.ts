import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DecisionListQuery, DecisionSummary, ProblemSchema, pageOf } from '../../../schemas/api.ts';
import { listDecisions } from '../../decisions/list-decisions.ts';
import { rebuildProjection } from '../../decisions/rebuild-monitor.ts';
import { CountersignError } from '../../errors.ts';
import { encodeCursor, monitorCursor } from '../cursor.ts';
import { authenticated, platformAdmin, principalOf, type ApiDeps } from '../server.ts';
import { readsOnlyOwn } from '../../identity/agent-binding.ts';

const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema };

/**
 * Roles whose list items carry the request itself (its args and context may hold personal or business
 * data): admins and auditors read everything of the tenant, approvers are shown the same request when asked
 * to approve it. Agents and authors get its digest only.
 */
const SEES_INPUT = new Set(['admin', 'auditor', 'approver']);

export function registerDecisionListRoute(app: FastifyInstance, deps: ApiDeps): void {
  app.withTypeProvider<ZodTypeProvider>().get('/v1/decisions', {
    onRequest: authenticated(deps, []),
    schema: {
      tags: ['decisions'],
      summary: "The monitor: your tenant's decisions, newest first, filtered (an agent sees the ones it asked for)",
      querystring: DecisionListQuery,
      response: { 200: pageOf(DecisionSummary), ...problems },
    },
  }, async (req) => {
    const p = principalOf(req);
    const q = req.query;
    if (q.policy_version !== undefined && q.policy_id === undefined) {
      throw new CountersignError('validation_failed', 'policy_version needs policy_id', { errors: [{ path: 'querystring.policy_version', message: 'only together with policy_id' }] });
    }
    const page = await listDecisions(deps.db, p.tenant_id, {
      limit: q.limit,
      after: monitorCursor(q.cursor),
      status: q.status,
      agent: q.agent,
      decision: q.decision,
      policyId: q.policy_id,
      policyVersion: q.policy_version,
      rule: q.rule,
      tool: q.tool,
      operation: q.operation,
      since: q.since,
      until: q.until,
      requestedBy: readsOnlyOwn(p) ? p.id : undefined,
      withInput: p.roles.some((r) => SEES_INPUT.has(r)),
    });
    return { items: page.items, next_cursor: page.next ? encodeCursor(page.next) : null };
  });

  const RebuildReportSchema = z.strictObject({ events_read: z.number().int(), rows: z.number().int(), duration_ms: z.number(), events_per_second: z.number() });
  app.withTypeProvider<ZodTypeProvider>().post('/v1/admin/monitor/rebuild', {
    onRequest: platformAdmin(deps),
    schema: {
      tags: ['admin'],
      summary: "Rebuild the monitor's projection from the event log (platform admins); lists keep answering from the old rows until it commits",
      body: z.strictObject({}).nullish(), // an empty POST arrives as null
      response: { 200: RebuildReportSchema, ...problems },
    },
  }, async () => rebuildProjection(deps.db, 'monitor'));

  app.withTypeProvider<ZodTypeProvider>().post('/v1/admin/inbox/rebuild', {
    onRequest: platformAdmin(deps),
    schema: {
      tags: ['admin'],
      summary: "Rebuild the approvers' inbox (the projection of open rounds and reviews behind GET /v1/approvals) from the event log (platform admins); inboxes keep answering from the old rows until it commits",
      body: z.strictObject({}).nullish(),
      response: { 200: RebuildReportSchema, ...problems },
    },
  }, async () => rebuildProjection(deps.db, 'inbox'));
}
