import { z } from 'zod';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ProblemSchema } from '../../../schemas/api.ts';
import { CountersignError } from '../../errors.ts';
import { lastTenantReplay, runTenantReplay } from '../../audit/tenant-replay.ts';
import { RateBuckets } from '../rate-buckets.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';

const problems = { 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema };
const AUDITORS = ['admin', 'auditor'] as const;

export const ReplaySummary = z.strictObject({
  id: z.string(), tenant_id: z.string(), started_by: z.string().describe('The principal who ran it.'),
  started_at: z.string(), finished_at: z.string(),
  ok: z.boolean().describe('No divergence: every receipt rebuilt identically, every chain and signature verified, every decision re-derived.'),
  records: z.number(), events: z.number(), streams: z.number(), runs: z.number(), receipts: z.number(),
  unsigned_runs: z.number().describe('Final runs still within the receipt grace (in flight), not divergences.'),
  policies: z.number(), re_evaluated: z.number(),
  signatures_checked: z.boolean().describe('False when the deployment has no public keys to check signatures with.'),
  divergences: z.array(z.strictObject({ stream_id: z.string().nullable(), position: z.string().nullable(), problem: z.string() })).describe('The first 50.'),
  divergence_count: z.number(),
});

/**
 * A tenant's audit replay through the API (the console's Audit page): admins and auditors of the tenant run
 * one over their own tenant's log and read the last result. A replay reads the tenant's whole log, so each
 * tenant gets one per COUNTERSIGN_AUDIT_REPLAY_INTERVAL and one at a time, beside the per-principal limits.
 */
export function registerAuditRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const interval = deps.config.COUNTERSIGN_AUDIT_REPLAY_INTERVAL;
  const perTenant = new RateBuckets(1, interval * 1000, 10_000);
  const running = new Set<string>();

  r.post('/v1/audit/replays', {
    onRequest: authenticated(deps, [...AUDITORS]),
    schema: {
      tags: ['audit'], summary: `Replay this tenant's log from Postgres (receipts, chains, signatures, re-derived decisions) and record the result; one per tenant per ${interval} s`,
      body: z.strictObject({}).nullish(), response: { 201: ReplaySummary, ...problems },
    },
  }, async (req, reply) => {
    const p = principalOf(req);
    if (running.has(p.tenant_id)) throw new CountersignError('conflict', 'a replay of this tenant is already running');
    const hit = perTenant.hit(p.tenant_id);
    if (!hit.allowed) {
      const seconds = Math.max(1, Math.ceil(hit.retryAfterMs / 1000));
      void reply.header('retry-after', String(seconds));
      throw new CountersignError('rate_limited', `one replay per tenant every ${interval} s; retry after ${seconds} s`, { extra: { retry_after_seconds: seconds } });
    }
    running.add(p.tenant_id);
    const progress = app.replayMetrics.started();
    let result: 'ok' | 'diverged' | 'failed' = 'failed';
    try {
      const summary = await runTenantReplay(deps.db, deps.config.keysDir, p.tenant_id, p.id, undefined, progress.progress);
      result = summary.ok ? 'ok' : 'diverged';
      return await reply.status(201).send(summary);
    } finally {
      progress.done(result);
      running.delete(p.tenant_id);
    }
  });

  r.get('/v1/audit/replays/latest', {
    onRequest: authenticated(deps, [...AUDITORS]),
    schema: {
      tags: ['audit'], summary: "The last replay of this tenant's log run through the API (null when none has run)", querystring: z.strictObject({}),
      response: { 200: z.strictObject({ replay: ReplaySummary.nullable() }), ...problems },
    },
  }, async (req) => ({ replay: await lastTenantReplay(deps.db, principalOf(req).tenant_id) }));
}
