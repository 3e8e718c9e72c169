import { z } from 'zod';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ProblemSchema } from '../../../schemas/api.ts';
import {
  ActivationAnswer, PolicyDetail, PolicyDiff, PolicyDraftAnswer, PolicyList, PolicySummary, PolicyVersions, ReviewAnswer, ReviewRequested, ValidationReport,
} from '../../../schemas/policy-api.ts';
import { CountersignError } from '../../errors.ts';
import { compileDocument, interpretations } from '../../policy/index.ts';
import { loadKeyring, type Keyring } from '../../receipts/keyring.ts';
import {
  activateDraft, clonePolicy, createDraft, deleteDraft, importPolicy, listPolicies, loadPolicy,
  mustLoad, policySettings, replaceDraft, validateDraft, type Actor,
} from '../../lifecycle/policy-lifecycle.ts';
import { changeNow, type PolicyChange } from '../../lifecycle/policy-change.ts';
import { diffDocuments, policySummary, versionSummary, type PolicyState } from '../../lifecycle/policy-store.ts';
import { answerActivationReview, requestActivationReview, requestChangeReview, type ReviewDeps } from '../../lifecycle/activation-reviews.ts';
import { exportVersion, PolicyExport } from '../../lifecycle/policy-export.ts';
import { PLATFORM_SCOPE } from '../../events/stream-ids.ts';
import { refusePlatformPolicy, visiblePlatformPolicies, visiblePlatformPolicy } from '../../lifecycle/platform-policies.ts';
import { authenticated, platformAdmin, principalOf, type ApiDeps } from '../server.ts';

export const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema };
// Ids as the lifecycle accepts them (never `/`, which separates the parts of stream ids).
export const PolicyIdParam = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'policy ids are letters, digits, dots, dashes or underscores');
const IdParams = z.strictObject({ id: PolicyIdParam });
export const Doc = z.record(z.string(), z.unknown());
export const WRITERS = ['author', 'admin'] as const;

const isReview = (res: unknown): res is ReviewRequested => (res as { status?: unknown }).status === 'pending_approval';

export function notFound(id: string): CountersignError {
  return new CountersignError('not_found', `policy ${id} not found`);
}

export function draftAnswer(s: PolicyState, interpreted: unknown[]): PolicyDraftAnswer {
  return { ...policySummary(s), version: s.draft?.version ?? s.active_version, status: s.status, document: s.draft?.document ?? null, interpreted };
}

export async function keyring(deps: ApiDeps): Promise<Keyring> {
  try {
    return await loadKeyring(deps.config.keysDir);
  } catch (err) {
    throw new CountersignError('dependency_unavailable', 'the signing keyring cannot be read', { extra: { dependency: 'keyring' }, cause: err });
  }
}

/**
 * Whose policies a set of lifecycle routes serves. The tenant's (`/v1/policies`, the caller's tenant; writers
 * are authors and admins; platform policies read through, read-only) or the platform's (`/v1/platform/policies`,
 * platform admins only, owner PLATFORM_SCOPE). The same lifecycle code runs behind both.
 */
export type LifecycleScope = {
  base: string;
  tag: string;
  readers: onRequestAsyncHookHandler;
  writers: onRequestAsyncHookHandler;
  reviewers: onRequestAsyncHookHandler;
  owner: (req: FastifyRequest) => string;
  /** Tenant routes only: platform policies are shown to tenants and refused to their changes. */
  platformReadThrough: boolean;
};

export const TENANT_ROUTES = (deps: ApiDeps): LifecycleScope => ({
  base: '/v1/policies', tag: 'policies',
  readers: authenticated(deps, []), writers: authenticated(deps, [...WRITERS]), reviewers: authenticated(deps, ['admin']),
  owner: (req) => principalOf(req).tenant_id, platformReadThrough: true,
});

export const PLATFORM_ROUTES = (deps: ApiDeps): LifecycleScope => ({
  base: '/v1/platform/policies', tag: 'platform',
  readers: platformAdmin(deps), writers: platformAdmin(deps), reviewers: platformAdmin(deps),
  owner: () => PLATFORM_SCOPE, platformReadThrough: false,
});

/** A platform policy in a tenant's listing or read: which scope, and that the tenant cannot change it. */
const asPlatform = <T extends object>(summary: T): T & { scope: { level: 'platform' }; read_only: true } => ({ ...summary, scope: { level: 'platform' }, read_only: true });

/**
 * A change of the active set other than activation (rollback, deprecate, bind, unbind): applied at once, or,
 * under four-eyes, a review (202) that a second admin answers at POST …/{id}/activation/approvals.
 */
export function changeOfActiveSet(deps: ApiDeps, reviews: ReviewDeps) {
  return async <T>(reply: FastifyReply, a: Actor, policyId: string, c: PolicyChange): Promise<T | ReviewRequested> => {
    if ((await policySettings(deps.db, a.tenantId)).fourEyes) {
      const res = await requestChangeReview(reviews, a, policyId, c);
      if (res['status'] === 'pending_approval') {
        void reply.status(202);
        return res as ReviewRequested;
      }
      return res as T;
    }
    return (await changeNow(deps.db, await keyring(deps), a, policyId, c)) as T;
  };
}

/**
 * The policy lifecycle over HTTP: drafts (JSON or YAML), activation (signed, immutable; a review under
 * four-eyes), deprecation, clone, rollback, versions, diff, validation against recent runs, export and import.
 */
export function registerLifecycleRoutes(app: FastifyInstance, deps: ApiDeps, reviews: ReviewDeps, scope: LifecycleScope): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { base, tag } = scope;
  const actor = (req: FastifyRequest): Actor => ({ tenantId: scope.owner(req), principalId: principalOf(req).id });
  /** Before a tenant's change: a platform policy of that id (and none of the tenant's own) is a 403. */
  const guard = async (req: FastifyRequest, policyId: string, what: string): Promise<void> => {
    // An id that is not one (from a body) is the lifecycle's to refuse, with its path.
    if (scope.platformReadThrough && PolicyIdParam.safeParse(policyId).success) await refusePlatformPolicy(deps.db, scope.owner(req), policyId, what);
  };
  /** A policy as the caller may read it: its owner's, or (tenant routes) the platform's activated one, read-only. */
  const readable = async (req: FastifyRequest, policyId: string): Promise<{ s: PolicyState; platform: boolean }> => {
    const s = await loadPolicy(deps.db, scope.owner(req), policyId);
    if (s && !s.deleted) return { s, platform: false };
    const p = scope.platformReadThrough ? await visiblePlatformPolicy(deps.db, scope.owner(req), policyId) : null;
    if (p) return { s: p, platform: true };
    throw notFound(policyId);
  };

  r.post(base, {
    onRequest: scope.writers,
    schema: { tags: [tag], summary: 'Create a policy draft (JSON, or YAML with content-type application/yaml)', body: Doc, response: { 201: PolicyDraftAnswer, ...problems } },
  }, async (req, reply) => {
    const meta = req.body['metadata'];
    const id = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>)['id'] : undefined;
    if (typeof id === 'string') await guard(req, id, 'replace');
    const { state, interpreted } = await createDraft(deps.db, actor(req), req.body);
    void reply.status(201);
    return draftAnswer(state, interpreted);
  });

  r.get(base, {
    onRequest: scope.readers,
    schema: { tags: [tag], summary: scope.platformReadThrough ? "The tenant's policies and their status, then the platform's (scope platform, read_only)" : "The platform's policies and their status", querystring: z.strictObject({}), response: { 200: PolicyList, ...problems } },
  }, async (req) => {
    const own = (await listPolicies(deps.db, scope.owner(req))).map(policySummary);
    const platform = scope.platformReadThrough ? (await visiblePlatformPolicies(deps.db, scope.owner(req))).map((s) => asPlatform(policySummary(s))) : [];
    return { items: [...own, ...platform] };
  });

  r.get(`${base}/:id`, {
    onRequest: scope.readers,
    schema: { tags: [tag], summary: 'A policy: status, draft, and the active version with its document', params: IdParams, querystring: z.strictObject({}), response: { 200: PolicyDetail, ...problems } },
  }, async (req) => {
    const { s, platform } = await readable(req, req.params.id);
    const active = s.versions.find((v) => v.version === s.active_version);
    // The natural-language rules of the document shown (the draft, else the active version) with their compiled form.
    const shown = s.draft?.document ?? active?.document;
    const compiled = shown ? compileDocument(shown, s.draft?.version ?? active?.version ?? 1) : null;
    const out = {
      ...policySummary(s), draft_document: s.draft?.document ?? null, active: active ? { ...versionSummary(active, s.active_version), document: active.document } : null,
      interpreted: compiled?.ok ? interpretations(compiled.policy) : [],
    };
    return platform ? asPlatform(out) : out;
  });

  r.put(`${base}/:id`, {
    onRequest: scope.writers,
    schema: { tags: [tag], summary: "Replace a policy's draft (409 when it has none: active versions are immutable)", params: IdParams, body: Doc, response: { 200: PolicyDraftAnswer, ...problems } },
  }, async (req) => {
    await guard(req, req.params.id, 'edit');
    const { state, interpreted } = await replaceDraft(deps.db, actor(req), req.params.id, req.body);
    return draftAnswer(state, interpreted);
  });

  r.delete(`${base}/:id`, {
    onRequest: scope.writers,
    schema: { tags: [tag], summary: 'Delete a draft (409 for anything but a draft)', params: IdParams, response: { 200: PolicySummary, ...problems } },
  }, async (req) => {
    await guard(req, req.params.id, 'delete');
    return policySummary(await deleteDraft(deps.db, actor(req), req.params.id));
  });

  r.get(`${base}/:id/versions`, {
    onRequest: scope.readers,
    schema: { tags: [tag], summary: 'Every activated version, oldest first', params: IdParams, querystring: z.strictObject({}), response: { 200: PolicyVersions, ...problems } },
  }, async (req) => {
    const { s, platform } = await readable(req, req.params.id);
    return { id: s.policy_id, active_version: s.active_version, items: s.versions.map((v) => versionSummary(v, s.active_version)), ...(platform ? { scope: { level: 'platform' as const }, read_only: true as const } : {}) };
  });

  r.get(`${base}/:id/diff`, {
    onRequest: scope.readers,
    schema: {
      tags: [tag], summary: 'Rule-by-rule difference between two versions (`draft` names the draft)', params: IdParams,
      querystring: z.strictObject({ from: z.string().regex(/^(\d+|draft)$/), to: z.string().regex(/^(\d+|draft)$/) }), response: { 200: PolicyDiff, ...problems },
    },
  }, async (req) => {
    const { s } = await readable(req, req.params.id);
    const doc = (v: string) => {
      const d = v === 'draft' ? s.draft?.document : s.versions.find((x) => x.version === Number(v))?.document;
      if (!d) throw new CountersignError('not_found', `policy ${s.policy_id} has no version ${v}`);
      return d;
    };
    return { id: s.policy_id, from: req.query.from, to: req.query.to, ...diffDocuments(doc(req.query.from), doc(req.query.to)) };
  });

  const ActivateBody = z.strictObject({
    expected_loosening: z.array(z.string().min(1).max(200)).max(200).optional().describe('Rules whose looser decisions in the validation are intended (with policy_refuse_loosening).'),
  }).nullish(); // an empty POST arrives as null
  const change = changeOfActiveSet(deps, reviews);

  r.post(`${base}/:id/activate`, {
    onRequest: scope.writers,
    schema: {
      tags: [tag], params: IdParams, body: ActivateBody, response: { 200: ActivationAnswer, 202: ReviewRequested, ...problems },
      summary: 'Activate the draft as the next version: compiled, hashed, signed, immutable. With four-eyes it opens a review instead (202) that a second admin answers',
    },
  }, async (req, reply) => {
    await guard(req, req.params.id, 'activate');
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

  r.post(`${base}/:id/activation/approvals`, {
    onRequest: scope.reviewers,
    schema: {
      tags: [tag], params: IdParams,
      summary: "A second admin's answer to the review waiting on a policy (four-eyes): 200 when it counted, 409 with the reason when not",
      body: z.strictObject({
        verdict: z.enum(['approve', 'reject']), comment: z.string().max(4000).optional(), review_id: z.string().min(1).max(300).optional(),
        channel: z.enum(['api', 'cli', 'dashboard']).optional()
          .describe("Where the answer was given, recorded in the review's answer event (default api). A label only: who answers is the key's principal. Slack and email answers come through their own routes."),
      }),
      response: { 200: ReviewAnswer, ...problems },
    },
  }, async (req) => {
    await guard(req, req.params.id, 'review');
    return answerActivationReview(reviews, principalOf(req), req.params.id, req.body, scope.owner(req), req.body.channel ?? 'api');
  });

  r.get(`${base}/:id/export`, {
    onRequest: scope.readers,
    schema: {
      tags: [tag], params: IdParams, summary: 'One activated version as signed JSON (hash, signature, signing_key_id, the frozen compiled policy); default the active version',
      querystring: z.strictObject({ version: z.coerce.number().int().positive().optional() }), response: { 200: PolicyExport, ...problems },
    },
  }, async (req) => {
    const { s } = await readable(req, req.params.id);
    const want = req.query.version ?? s.active_version ?? s.versions.at(-1)?.version;
    const v = s.versions.find((x) => x.version === want);
    if (!v) throw new CountersignError('not_found', `policy ${s.policy_id} has no version ${want ?? '(none activated)'}`);
    return exportVersion(await keyring(deps), s.policy_id, v, new Date());
  });

  r.post(`${base}/import`, {
    onRequest: scope.writers,
    schema: {
      tags: [tag], summary: 'Import a signed export as a draft; a tampered file or an unknown key is refused (422) with the reason', body: z.record(z.string(), z.unknown()),
      response: { 201: PolicyDraftAnswer, ...problems, 422: ProblemSchema },
    },
  }, async (req, reply) => {
    const id = req.body['policy_id'];
    if (typeof id === 'string') await guard(req, id, 'replace');
    const s = await importPolicy(deps.db, (await keyring(deps)).publicKeys(), actor(req), req.body);
    void reply.status(201);
    return draftAnswer(s, []);
  });

  r.post(`${base}/:id/deprecate`, {
    onRequest: scope.writers,
    schema: { tags: [tag], summary: 'Deprecate the active version: it stops applying. With four-eyes it opens a review instead (202)', params: IdParams, response: { 200: PolicySummary, 202: ReviewRequested, ...problems } },
  }, async (req, reply) => {
    await guard(req, req.params.id, 'deprecate');
    const a = actor(req);
    const s = await mustLoad(deps.db, a.tenantId, req.params.id);
    if (s.active_version === null) throw new CountersignError('conflict', `policy ${req.params.id} has no active version to deprecate`);
    const res = await change<unknown>(reply, a, req.params.id, { kind: 'deprecate', version: s.active_version });
    if (isReview(res)) return res;
    const after = await loadPolicy(deps.db, a.tenantId, req.params.id);
    return policySummary(after!);
  });

  r.post(`${base}/:id/clone`, {
    onRequest: scope.writers,
    schema: {
      tags: [tag], summary: "Make the next version's draft from the active version, or from `from_version` (lineage recorded)", params: IdParams,
      body: z.strictObject({ from_version: z.number().int().positive().optional() }).nullish(), response: { 201: PolicyDraftAnswer, ...problems },
    },
  }, async (req, reply) => {
    await guard(req, req.params.id, 'clone');
    const s = await clonePolicy(deps.db, actor(req), req.params.id, req.body?.from_version);
    void reply.status(201);
    return draftAnswer(s, []);
  });

  r.post(`${base}/:id/rollback`, {
    onRequest: scope.writers,
    schema: {
      tags: [tag], params: IdParams, body: z.strictObject({ to_version: z.number().int().positive() }), response: { 200: ActivationAnswer, 202: ReviewRequested, ...problems },
      summary: "Re-activate an earlier version's compiled policy as the next version. With four-eyes it opens a review instead (202); with the validation gate it is refused (clone, validate, activate)",
    },
  }, async (req, reply) => {
    await guard(req, req.params.id, 'roll back');
    const a = actor(req);
    if (!(await loadPolicy(deps.db, a.tenantId, req.params.id))) throw notFound(req.params.id);
    return change<ActivationAnswer>(reply, a, req.params.id, { kind: 'rollback', to_version: req.body.to_version });
  });

  r.post(`${base}/:id/validate`, {
    onRequest: scope.writers,
    schema: {
      tags: [tag], params: IdParams, response: { 200: ValidationReport, ...problems },
      summary: scope.platformReadThrough ? 'Replay the draft against the last 7 days of runs (at most 1000): which decisions would change' : "Replay the draft against the last 7 days of every tenant's runs (at most 1000): which decisions would change",
    },
  }, async (req) => {
    await guard(req, req.params.id, 'validate');
    return validateDraft(deps.db, actor(req), req.params.id, async (agentId, tenantId) => deps.policies.effective(tenantId, agentId));
  });
}
