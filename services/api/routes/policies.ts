import { z } from 'zod';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ProblemSchema } from '../../../schemas/api.ts';
import { AgentBinding, BindingChangeAnswer, ManifestAnswer, ReviewRequested, SimulateAnswer } from '../../../schemas/policy-api.ts';
import { AgentId, type Evaluation } from '../../../schemas/decision.ts';
import { approvalRoute } from '../../decisions/approval-requirements.ts';
import { withApprovalTimeout } from '../../decisions/approval-timeout.ts';
import { approvalTimeout } from '../../decisions/override-settings.ts';
import { routePeople, type PeopleRoute } from '../../decisions/approval-route-people.ts';
import type { Principal } from '../../identity/principals.ts';
import { CountersignError } from '../../errors.ts';
import { simulate } from '../../policy/index.ts';
import { parseDataText } from '../../policy/parse-text.ts';
import { currentBinding, loadPolicy, type Actor } from '../../lifecycle/policy-lifecycle.ts';
import { unbindTarget } from '../../lifecycle/policy-change.ts';
import type { ReviewDeps } from '../../lifecycle/activation-reviews.ts';
import { AgentManifest, pushManifest } from '../../lifecycle/agent-manifest.ts';
import { readAttestationSecret } from '../../decisions/attestation.ts';
import { authenticated, platformAdmin, principalOf, type ApiDeps } from '../server.ts';
import { changePlatformSettings, readPlatformSettings } from '../../lifecycle/platform-settings.ts';
import { refusePlatformPolicy } from '../../lifecycle/platform-policies.ts';
import { PlatformSettings, RecordedPlatformSettings } from '../../../schemas/identity.ts';
import { readsOnlyOwn, requireAgent } from '../../identity/agent-binding.ts';
import {
  changeOfActiveSet, Doc, PLATFORM_ROUTES, PolicyIdParam, problems, registerLifecycleRoutes, TENANT_ROUTES, WRITERS,
} from './policy-lifecycle-routes.ts';

const actor = (req: FastifyRequest): Actor => {
  const p = principalOf(req);
  return { tenantId: p.tenant_id, principalId: p.id };
};

/**
 * Policies over HTTP: the lifecycle routes of a tenant's policies (/v1/policies) and of the platform's
 * (/v1/platform/policies, platform admins; policy-lifecycle-routes.ts), the platform's settings, agent
 * bindings and manifests, simulation.
 */
export function registerPolicyRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  let secret: Buffer | null = null;
  const reviews: ReviewDeps = {
    db: deps.db, temporal: deps.temporal, taskQueue: deps.config.COUNTERSIGN_TASK_QUEUE,
    secret: () => (secret ??= readAttestationSecret(deps.config.keysDir, deps.config.COUNTERSIGN_ATTESTATION_SECRET)),
  };

  // YAML bodies for drafts: parsed here with positions, so an error names LINE:COL.
  app.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml'], { parseAs: 'string' }, (_req, body, done) => {
    const parsed = parseDataText(String(body), 'body');
    if (!parsed.ok) {
      done(new CountersignError('validation_failed', 'the YAML body does not parse', { errors: parsed.errors.map((e) => ({ path: e.path, message: e.message })) }), undefined);
      return;
    }
    done(null, parsed.value);
  });

  /** A binding change: applied at once, or, in a four-eyes tenant, a review (202) on the policy. */
  const change = changeOfActiveSet(deps, reviews);

  registerLifecycleRoutes(app, deps, reviews, TENANT_ROUTES(deps));
  registerLifecycleRoutes(app, deps, reviews, PLATFORM_ROUTES(deps));

  r.get('/v1/platform/settings', {
    onRequest: platformAdmin(deps),
    schema: { tags: ['platform'], summary: "The platform's policy settings (platform admins): four-eyes, validation and review timeout of platform policies", querystring: z.strictObject({}), response: { 200: RecordedPlatformSettings, ...problems } },
  }, async () => (await readPlatformSettings(deps.db)).settings);

  r.patch('/v1/platform/settings', {
    onRequest: platformAdmin(deps),
    schema: {
      tags: ['platform'], summary: "Change the platform's policy settings (platform admins); recorded as PlatformSettingsChanged on platform/settings",
      body: PlatformSettings.refine((b) => Object.keys(b).length > 0, 'nothing to change'), response: { 200: RecordedPlatformSettings, ...problems },
    },
  }, async (req) => changePlatformSettings(deps.db, principalOf(req).id, req.body));

  const AgentParams = z.strictObject({ id: AgentId });
  r.get('/v1/agents/:id/binding', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['policies'], summary: "The policy bound to an agent (and its active version's document)", params: AgentParams, querystring: z.strictObject({}), response: { 200: AgentBinding, ...problems } },
  }, async (req) => {
    const tenantId = principalOf(req).tenant_id;
    const b = await currentBinding(deps.db, tenantId, req.params.id);
    const s = b.policy_id ? await loadPolicy(deps.db, tenantId, b.policy_id) : null;
    const active = s?.versions.find((v) => v.version === s.active_version);
    return { agent_id: req.params.id, policy_id: b.policy_id, version: active?.version ?? null, hash: active?.hash ?? null, document: active?.document ?? null };
  });

  r.post('/v1/agents/:id/binding', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: { tags: ['policies'], summary: 'Bind a policy to an agent (at most one per agent: 409 while another is bound). With four-eyes it opens a review instead (202)', params: AgentParams, body: z.strictObject({ policy_id: PolicyIdParam }), response: { 200: BindingChangeAnswer, 202: ReviewRequested, ...problems } },
  }, async (req, reply) => {
    await refusePlatformPolicy(deps.db, principalOf(req).tenant_id, req.body.policy_id, 'bind');
    return change<BindingChangeAnswer>(reply, actor(req), req.body.policy_id, { kind: 'bind', agent_id: req.params.id });
  });

  r.delete('/v1/agents/:id/binding', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: { tags: ['policies'], summary: "Unbind an agent's policy. With four-eyes it opens a review on the bound policy instead (202)", params: AgentParams, response: { 200: BindingChangeAnswer, 202: ReviewRequested, ...problems } },
  }, async (req, reply) => {
    const a = actor(req);
    return change<BindingChangeAnswer>(reply, a, await unbindTarget(deps.db, a.tenantId, req.params.id), { kind: 'unbind', agent_id: req.params.id });
  });

  r.post('/v1/agents/:id/manifest', {
    onRequest: authenticated(deps, ['agent', 'author', 'admin']),
    schema: {
      tags: ['policies'], params: AgentParams, body: AgentManifest,
      querystring: z.strictObject({ force: z.enum(['true', 'false']).optional().describe('Accept despite violations (admins and authors; recorded as AgentManifestForced)') }),
      summary: "Check an agent's declared providers, models and tools against the active policies: 409 listing each violation unless force",
      response: { 200: ManifestAnswer, ...problems },
    },
  }, async (req) => {
    const p = principalOf(req);
    // An agent checks its own manifest (or one of an agent it acts for); authors and admins check any agent's.
    if (readsOnlyOwn(p)) requireAgent(p, req.params.id, 'id');
    return pushManifest(deps.db, { tenantId: p.tenant_id, principalId: p.id, roles: p.roles }, req.params.id, req.body, req.query.force === 'true', (agentId) => deps.policies.effective(p.tenant_id, agentId));
  });

  for (const url of ['/v1/policy/simulate', '/api/v1/policy/simulate']) {
    r.post(url, {
      onRequest: authenticated(deps, []),
      schema: { tags: ['policies'], summary: 'The decision a request would get (against the active set, or with a draft policy), without starting anything', body: Doc, response: { 200: SimulateAnswer, ...problems, 422: ProblemSchema } },
    }, async (req) => {
      const p = principalOf(req);
      const tenantId = p.tenant_id;
      const body = req.body as { request?: { agent?: { id?: unknown } }; job?: { agent?: unknown } };
      const agentRaw = body.request?.agent?.id ?? body.job?.agent;
      const named = typeof agentRaw === 'string' && agentRaw ? agentRaw : undefined;
      // An agent simulates as itself (or one it acts for), as it decides; authors, admins and auditors try any
      // agent (nothing starts, nothing is counted). Left out, the agent is the key's own.
      const agentId = readsOnlyOwn(p) ? requireAgent(p, named, body.job ? 'job.agent' : 'request.agent.id').agentId : named ?? p.agent_id ?? 'simulation';
      const active = await deps.policies.effective(tenantId, agentId);
      // As the decision path does: the tenant's tool catalog tags the request (facts.tool_catalog in the answer).
      const catalog = deps.catalogs ? await deps.catalogs.current(tenantId) : undefined;
      const out = simulate({ body: withAgent(req.body, agentId), active: active.snapshot, now: new Date(), defaultDecision: active.defaultDecision, ...(catalog ? { catalog } : {}) });
      if (!out.ok) {
        const errors = out.errors.map((e) => ({ path: e.path, message: e.message }));
        if (out.unprocessable) throw new CountersignError('unprocessable', `the simulation cannot be run: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, { errors });
        throw new CountersignError('validation_failed', 'the simulation request is invalid', { errors });
      }
      // As a run started now would: the tenant's approval_timeout stands in for timeouts the rules left out.
      const result = withApprovalTimeout(out.result, approvalTimeout(active.settings).approval_timeout_sec);
      return { ...result, policies: active.policies, ...(await whoWouldBeAsked(deps, p, result, readsOnlyOwn(p) ? p.id : null)) };
    });
  }
}

/**
 * For a REQUIRE_APPROVAL: the approval route, each requirement's levels with their groups, deadlines and the
 * people (and channels) each would notify now. Absent for any other decision.
 */
async function whoWouldBeAsked(deps: ApiDeps, p: Principal, e: Evaluation, requester: string | null): Promise<{ approval_route?: PeopleRoute }> {
  if (e.decision !== 'REQUIRE_APPROVAL') return {};
  const now = new Date(e.now);
  const route = approvalRoute(e, now);
  return { approval_route: await routePeople(deps.db, p.tenant_id, route, { requester, slack: !!deps.config.COUNTERSIGN_SLACK_BOT_TOKEN, email: !!deps.config.COUNTERSIGN_SMTP_URL, now: new Date() }) };
}

/** A simulation body whose request leaves the agent (or its id) out, given the agent it is simulated for. */
function withAgent(body: unknown, agentId: string): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(body) || !isObject(body['request'])) return body;
  const request = body['request'];
  const agent = request['agent'];
  if (agent === undefined) return { ...body, request: { ...request, agent: { id: agentId } } };
  if (isObject(agent) && agent['id'] === undefined) return { ...body, request: { ...request, agent: { ...agent, id: agentId } } };
  return body;
}
