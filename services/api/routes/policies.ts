import { z } from 'zod';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ProblemSchema } from '../../../schemas/api.ts';
import { AgentId } from '../../../schemas/decision.ts';
import { CountersignError } from '../../errors.ts';
import { compileDocument, interpretations, simulate } from '../../policy/index.ts';
import { parseDataText } from '../../policy/parse-text.ts';
import { loadKeyring, type Keyring } from '../../receipts/keyring.ts';
import {
  activateDraft, clonePolicy, createDraft, currentBinding, deleteDraft, importPolicy, listPolicies, loadPolicy,
  mustLoad, policySettings, replaceDraft, validateDraft, type Actor,
} from '../../lifecycle/policy-lifecycle.ts';
import { changeNow, unbindTarget, type PolicyChange } from '../../lifecycle/policy-change.ts';
import { diffDocuments, policySummary, versionSummary, type PolicyState } from '../../lifecycle/policy-store.ts';
import { answerActivationReview, requestActivationReview, requestChangeReview, type ReviewDeps } from '../../lifecycle/activation-reviews.ts';
import { exportVersion, PolicyExport } from '../../lifecycle/policy-export.ts';
import { AgentManifest, pushManifest } from '../../lifecycle/agent-manifest.ts';
import { readAttestationSecret } from '../../decisions/attestation.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';
import { readsOnlyOwn, requireAgent } from '../../identity/agent-binding.ts';

const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema };
// Ids as the lifecycle accepts them (never `/`, which separates the parts of stream ids).
const PolicyIdParam = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'policy ids are letters, digits, dots, dashes or underscores');
const IdParams = z.strictObject({ id: PolicyIdParam });
const Doc = z.record(z.string(), z.unknown());
const Answer = z.record(z.string(), z.unknown());
const WRITERS = ['author', 'admin'] as const;

const actor = (req: FastifyRequest): Actor => {
  const p = principalOf(req);
  return { tenantId: p.tenant_id, principalId: p.id };
};

function notFound(id: string): CountersignError {
  return new CountersignError('not_found', `policy ${id} not found`);
}

function draftAnswer(s: PolicyState, interpreted: unknown[]): Record<string, unknown> {
  return { ...policySummary(s), version: s.draft?.version ?? s.active_version, status: s.status, document: s.draft?.document ?? null, interpreted };
}

async function keyring(deps: ApiDeps): Promise<Keyring> {
  try {
    return await loadKeyring(deps.config.keysDir);
  } catch (err) {
    throw new CountersignError('dependency_unavailable', 'the signing keyring cannot be read', { extra: { dependency: 'keyring' }, cause: err });
  }
}

/**
 * The policy lifecycle over HTTP (issue 7): drafts (JSON or YAML), activation (signed, immutable),
 * deprecation, clone, rollback, versions, diff, validation against recent runs, agent bindings, simulation.
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

  r.post('/v1/policies', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: { tags: ['policies'], summary: 'Create a policy draft (JSON, or YAML with content-type application/yaml)', body: Doc, response: { 201: Answer, ...problems } },
  }, async (req, reply) => {
    const { state, interpreted } = await createDraft(deps.db, actor(req), req.body);
    void reply.status(201);
    return draftAnswer(state, interpreted);
  });

  r.get('/v1/policies', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['policies'], summary: "The tenant's policies and their status", querystring: z.strictObject({}), response: { 200: z.strictObject({ items: z.array(Answer) }), ...problems } },
  }, async (req) => ({ items: (await listPolicies(deps.db, principalOf(req).tenant_id)).map(policySummary) }));

  r.get('/v1/policies/:id', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['policies'], summary: 'A policy: status, draft, and the active version with its document', params: IdParams, querystring: z.strictObject({}), response: { 200: Answer, ...problems } },
  }, async (req) => {
    const s = await loadPolicy(deps.db, principalOf(req).tenant_id, req.params.id);
    if (!s || s.deleted) throw notFound(req.params.id);
    const active = s.versions.find((v) => v.version === s.active_version);
    // The natural-language rules of the document shown (the draft, else the active version) with their compiled form.
    const shown = s.draft?.document ?? active?.document;
    const compiled = shown ? compileDocument(shown, s.draft?.version ?? active?.version ?? 1) : null;
    return {
      ...policySummary(s), draft_document: s.draft?.document ?? null, active: active ? { ...versionSummary(active, s.active_version), document: active.document } : null,
      interpreted: compiled?.ok ? interpretations(compiled.policy) : [],
    };
  });

  r.put('/v1/policies/:id', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: { tags: ['policies'], summary: "Replace a policy's draft (409 when it has none: active versions are immutable)", params: IdParams, body: Doc, response: { 200: Answer, ...problems } },
  }, async (req) => {
    const { state, interpreted } = await replaceDraft(deps.db, actor(req), req.params.id, req.body);
    return draftAnswer(state, interpreted);
  });

  r.delete('/v1/policies/:id', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: { tags: ['policies'], summary: 'Delete a draft (409 for anything but a draft)', params: IdParams, response: { 200: Answer, ...problems } },
  }, async (req) => policySummary(await deleteDraft(deps.db, actor(req), req.params.id)));

  r.get('/v1/policies/:id/versions', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['policies'], summary: 'Every activated version, oldest first', params: IdParams, querystring: z.strictObject({}), response: { 200: Answer, ...problems } },
  }, async (req) => {
    const s = await loadPolicy(deps.db, principalOf(req).tenant_id, req.params.id);
    if (!s || s.deleted) throw notFound(req.params.id);
    return { id: s.policy_id, active_version: s.active_version, items: s.versions.map((v) => versionSummary(v, s.active_version)) };
  });

  r.get('/v1/policies/:id/diff', {
    onRequest: authenticated(deps, []),
    schema: {
      tags: ['policies'], summary: 'Rule-by-rule difference between two versions (`draft` names the draft)', params: IdParams,
      querystring: z.strictObject({ from: z.string().regex(/^(\d+|draft)$/), to: z.string().regex(/^(\d+|draft)$/) }), response: { 200: Answer, ...problems },
    },
  }, async (req) => {
    const s = await loadPolicy(deps.db, principalOf(req).tenant_id, req.params.id);
    if (!s || s.deleted) throw notFound(req.params.id);
    const doc = (v: string) => {
      const d = v === 'draft' ? s.draft?.document : s.versions.find((x) => x.version === Number(v))?.document;
      if (!d) throw new CountersignError('not_found', `policy ${s.policy_id} has no version ${v}`);
      return d;
    };
    return { id: s.policy_id, from: req.query.from, to: req.query.to, ...diffDocuments(doc(req.query.from), doc(req.query.to)) };
  });

  const ActivateBody = z.strictObject({
    expected_loosening: z.array(z.string().min(1).max(200)).max(200).optional().describe('Rules whose looser decisions in the validation are intended (tenants with policy_refuse_loosening).'),
  }).nullish(); // an empty POST arrives as null
  /**
   * A change of the active set other than activation: applied at once, or, in a four-eyes tenant, a review
   * (202) that a second admin answers at POST /v1/policies/{id}/activation/approvals.
   */
  const change = async (reply: FastifyReply, a: Actor, policyId: string, c: PolicyChange): Promise<Record<string, unknown>> => {
    if ((await policySettings(deps.db, a.tenantId)).fourEyes) {
      const res = await requestChangeReview(reviews, a, policyId, c);
      if (res['status'] === 'pending_approval') void reply.status(202);
      return res;
    }
    return changeNow(deps.db, await keyring(deps), a, policyId, c);
  };

  r.post('/v1/policies/:id/activate', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: {
      tags: ['policies'], params: IdParams, body: ActivateBody, response: { 200: Answer, 202: Answer, ...problems },
      summary: 'Activate the draft as the next version: compiled, hashed, signed, immutable. With four-eyes (tenant setting) it opens a review instead (202) that a second admin answers',
    },
  }, async (req, reply) => {
    const a = actor(req);
    if (!(await loadPolicy(deps.db, a.tenantId, req.params.id))) throw notFound(req.params.id);
    const opts = { expected_loosening: req.body?.expected_loosening };
    if ((await policySettings(deps.db, a.tenantId)).fourEyes) {
      const res = await requestActivationReview(reviews, a, req.params.id, opts);
      if (res.status === 'pending_approval') void reply.status(202);
      return res;
    }
    return activateDraft(deps.db, await keyring(deps), a, req.params.id, opts);
  });

  r.post('/v1/policies/:id/activation/approvals', {
    onRequest: authenticated(deps, ['admin']),
    schema: {
      tags: ['policies'], params: IdParams,
      summary: "A second admin's answer to the activation review waiting on a policy (four-eyes): 200 when it counted, 409 with the reason when not",
      body: z.strictObject({ verdict: z.enum(['approve', 'reject']), comment: z.string().max(4000).optional(), review_id: z.string().min(1).max(300).optional() }),
      response: { 200: Answer, ...problems },
    },
  }, async (req) => answerActivationReview(reviews, principalOf(req), req.params.id, req.body));

  r.get('/v1/policies/:id/export', {
    onRequest: authenticated(deps, []),
    schema: {
      tags: ['policies'], params: IdParams, summary: 'One activated version as signed JSON (hash, signature, signing_key_id); default the active version',
      querystring: z.strictObject({ version: z.coerce.number().int().positive().optional() }), response: { 200: PolicyExport, ...problems },
    },
  }, async (req) => {
    const s = await loadPolicy(deps.db, principalOf(req).tenant_id, req.params.id);
    if (!s || s.deleted) throw notFound(req.params.id);
    const want = req.query.version ?? s.active_version ?? s.versions.at(-1)?.version;
    const v = s.versions.find((x) => x.version === want);
    if (!v) throw new CountersignError('not_found', `policy ${s.policy_id} has no version ${want ?? '(none activated)'}`);
    return exportVersion(await keyring(deps), s.policy_id, v, new Date());
  });

  r.post('/v1/policies/import', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: {
      tags: ['policies'], summary: 'Import a signed export as a draft; a tampered file or an unknown key is refused (422) with the reason', body: z.record(z.string(), z.unknown()),
      response: { 201: Answer, ...problems, 422: ProblemSchema },
    },
  }, async (req, reply) => {
    const s = await importPolicy(deps.db, (await keyring(deps)).publicKeys(), actor(req), req.body);
    void reply.status(201);
    return draftAnswer(s, []);
  });

  r.post('/v1/policies/:id/deprecate', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: { tags: ['policies'], summary: 'Deprecate the active version: it stops applying. With four-eyes it opens a review instead (202)', params: IdParams, response: { 200: Answer, 202: Answer, ...problems } },
  }, async (req, reply) => {
    const a = actor(req);
    const s = await mustLoad(deps.db, a.tenantId, req.params.id);
    if (s.active_version === null) throw new CountersignError('conflict', `policy ${req.params.id} has no active version to deprecate`);
    const res = await change(reply, a, req.params.id, { kind: 'deprecate', version: s.active_version });
    if (res['status'] === 'pending_approval') return res;
    const after = await loadPolicy(deps.db, a.tenantId, req.params.id);
    return policySummary(after!);
  });

  r.post('/v1/policies/:id/clone', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: {
      tags: ['policies'], summary: "Make the next version's draft from the active version, or from `from_version` (lineage recorded)", params: IdParams,
      body: z.strictObject({ from_version: z.number().int().positive().optional() }).nullish(), response: { 201: Answer, ...problems },
    },
  }, async (req, reply) => {
    const s = await clonePolicy(deps.db, actor(req), req.params.id, req.body?.from_version);
    void reply.status(201);
    return draftAnswer(s, []);
  });

  r.post('/v1/policies/:id/rollback', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: {
      tags: ['policies'], params: IdParams, body: z.strictObject({ to_version: z.number().int().positive() }), response: { 200: Answer, 202: Answer, ...problems },
      summary: "Re-activate an earlier version's document as the next version. With four-eyes it opens a review instead (202); with the validation gate it is refused (clone, validate, activate)",
    },
  }, async (req, reply) => {
    const a = actor(req);
    if (!(await loadPolicy(deps.db, a.tenantId, req.params.id))) throw notFound(req.params.id);
    return change(reply, a, req.params.id, { kind: 'rollback', to_version: req.body.to_version });
  });

  r.post('/v1/policies/:id/validate', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: { tags: ['policies'], summary: "Replay the draft against the last 7 days of runs (at most 1000): which decisions would change", params: IdParams, response: { 200: Answer, ...problems } },
  }, async (req) => {
    const a = actor(req);
    return validateDraft(deps.db, a, req.params.id, async (agentId) => deps.policies.effective(a.tenantId, agentId));
  });

  const AgentParams = z.strictObject({ id: AgentId });
  r.get('/v1/agents/:id/binding', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['policies'], summary: "The policy bound to an agent (and its active version's document)", params: AgentParams, querystring: z.strictObject({}), response: { 200: Answer, ...problems } },
  }, async (req) => {
    const tenantId = principalOf(req).tenant_id;
    const b = await currentBinding(deps.db, tenantId, req.params.id);
    const s = b.policy_id ? await loadPolicy(deps.db, tenantId, b.policy_id) : null;
    const active = s?.versions.find((v) => v.version === s.active_version);
    return { agent_id: req.params.id, policy_id: b.policy_id, version: active?.version ?? null, hash: active?.hash ?? null, document: active?.document ?? null };
  });

  r.post('/v1/agents/:id/binding', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: { tags: ['policies'], summary: 'Bind a policy to an agent (at most one per agent: 409 while another is bound). With four-eyes it opens a review instead (202)', params: AgentParams, body: z.strictObject({ policy_id: PolicyIdParam }), response: { 200: Answer, 202: Answer, ...problems } },
  }, async (req, reply) => change(reply, actor(req), req.body.policy_id, { kind: 'bind', agent_id: req.params.id }));

  r.delete('/v1/agents/:id/binding', {
    onRequest: authenticated(deps, [...WRITERS]),
    schema: { tags: ['policies'], summary: "Unbind an agent's policy. With four-eyes it opens a review on the bound policy instead (202)", params: AgentParams, response: { 200: Answer, 202: Answer, ...problems } },
  }, async (req, reply) => {
    const a = actor(req);
    return change(reply, a, await unbindTarget(deps.db, a.tenantId, req.params.id), { kind: 'unbind', agent_id: req.params.id });
  });

  r.post('/v1/agents/:id/manifest', {
    onRequest: authenticated(deps, ['agent', 'author', 'admin']),
    schema: {
      tags: ['policies'], params: AgentParams, body: AgentManifest,
      querystring: z.strictObject({ force: z.enum(['true', 'false']).optional().describe('Accept despite violations (admins and authors; recorded as AgentManifestForced)') }),
      summary: "Check an agent's declared providers, models and tools against the active policies: 409 listing each violation unless force",
      response: { 200: Answer, ...problems },
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
      schema: { tags: ['policies'], summary: 'The decision a request would get (against the active set, or with a draft policy), without starting anything', body: Doc, response: { 200: Answer, ...problems, 422: ProblemSchema } },
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
      return { ...out.result, policies: active.policies };
    });
  }
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
