import { z } from 'zod';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ApprovalRequirementStatus, DecisionRequestBody, DecisionResult, JudgmentItem } from '../../../schemas/decision.ts';
import { readsOnlyOwn } from '../../identity/agent-binding.ts';
import { readAttestationSecret } from '../../decisions/attestation.ts';
import { requestDecisionAnswer } from '../../decisions/request-decision.ts';
import { requestTrace } from '../../telemetry/trace-context.ts';
import { requireSafeCallbackUrl } from '../../callbacks/callback-target.ts';
import { waitForDecision } from '../../decisions/read-decision.ts';
import { answerApproval, pendingApprovals, reportOutcome, requestOverride } from '../../decisions/run-messages.ts';
import { RunWatcher } from '../../decisions/run-watcher.ts';
import { pendingReviews } from '../../lifecycle/activation-review-inbox.ts';
import { createLogger } from '../../logger.ts';
import { Outcome } from '../../policy/index.ts';
import { durationSeconds } from '../../../schemas/duration.ts';
import { remindBeforeSetting } from '../../../workflows/decision-reminders.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';
import { loadKeyring, type Keyring } from '../../receipts/keyring.ts';

/** Set on a 200 of POST /v1/decisions answered from an existing idempotency record. */
export const REPLAYED_HEADER = 'idempotent-replayed';

const Problem = z.looseObject({ type: z.string(), title: z.string(), status: z.number(), code: z.string(), detail: z.string() });
const DecisionIdParams = z.strictObject({ id: z.string().regex(/^dec_[0-9a-f]{32}$/, 'decision ids look like dec_<32 hex>') });
const Sha = z.string().regex(/^sha256:[0-9a-f]{64}$/);

export const AnswerBody = z.strictObject({
  verdict: z.enum(['approve', 'reject']),
  comment: z.string().max(4000).optional(),
  round: z.number().int().positive().optional().describe('Defaults to the open round.'),
  args_digest: Sha.nullable().optional().describe('When given, the answer counts only if the round is bound to exactly these arguments.'),
  edited_args: z.record(z.string(), z.unknown()).optional()
    .describe("Approve with edit: the arguments approved instead of the ones asked for (approve only). Re-evaluated against the run's own policy snapshot, facts and clock; counted only when no looser than the request (not DENY, still REQUIRE_APPROVAL by rules the round asked, constraints no wider). The agent receives them as edited_args; at most 65536 characters of JSON."),
  channel: z.enum(['api', 'cli', 'dashboard']).optional()
    .describe('Where the answer was given, recorded as its channel (default api). A label only: who answers is the key\'s principal. Slack and email answers come through their own routes.'),
});
const AnswerResultSchema = z.strictObject({ counted: z.literal(true), round: z.number(), round_status: z.string(), decision_status: z.enum(['final', 'pending_approval']) });
const OverrideBody = z.strictObject({ justification: z.string().trim().min(1).max(4000) });
const OverrideResultSchema = z.strictObject({ round: z.number(), groups: z.array(z.string()), deadline: z.string() });
const OutcomeResultSchema = z.strictObject({ violations: z.number(), output_digest: z.string(), violations_found: z.array(z.strictObject({ policy_id: z.string(), rule: z.string(), reason: z.string() })) });
const PendingApprovalSchema = z.strictObject({
  decision_id: z.string(), round: z.number(), kind: z.enum(['approval', 'override']), agent_id: z.string(), tool: z.string(), operation: z.string().nullable(),
  reason: z.string(), matched_rule: z.string().nullable(), groups: z.array(z.string()), quorum: z.number(), approvals: z.number(), deadline: z.string(),
  args_digest: z.string().nullable(), snapshot_hash: z.string(), justification: z.string().nullable(),
  requirements: z.array(ApprovalRequirementStatus).optional().describe('A round of requirements: each one and where it stands; every one must approve.'),
  checklist: z.array(JudgmentItem).optional().describe('The judgment rules of the request: the sentences the approver checks before answering.'),
  args: z.unknown().describe("The request's arguments as the agent sent them (the round is bound to their digest)."),
  constraints: z.record(z.string(), z.unknown()).describe('The constraints that will apply when the round approves.'),
  history: z.array(z.strictObject({
    decision_id: z.string(), asked_at: z.string(), operation: z.string().nullable(), decision: z.string().nullable(), finalized_via: z.string().nullable(),
    outcome: z.enum(['succeeded', 'failed']).nullable(),
  })).describe("The agent's last 5 decisions for the same tool before this one, newest first: what it got, and the outcome it reported."),
  policies: z.array(z.strictObject({ policy_id: z.string(), version: z.number() })).describe('The policy versions that decided the run.'),
  answers: z.array(z.strictObject({ approver_id: z.string(), verdict: z.enum(['approve', 'reject']), channel: z.string(), at: z.string(), comment: z.string().nullable() }))
    .describe('Who answered this round so far.'),
  on_timeout: z.enum(['DENY', 'ALLOW']).describe('What the run becomes at the deadline without a quorum.'),
  escalate_to: z.array(z.string()),
  edits_allowed: z.boolean().describe('Whether an approval may carry edited_args (approve with edit): an approval round whose rules do not say allow_edits: false. An edit still counts only when no looser than the request.'),
  edited_args: z.record(z.string(), z.unknown()).optional()
    .describe('Present when the round is being approved with changed arguments: the arguments its approvals so far approved. A further approval counts only with these same edited_args (or reject).'),
  edited_args_digest: z.string().optional().describe('sha256 over the canonical JSON of edited_args.'),
  edited_by: z.string().nullable().optional().describe('Who first approved the edited arguments.'),
});
const PendingReviewSchema = z.strictObject({
  kind: z.literal('activation_review'),
  review_id: z.string(), policy_id: z.string(), version: z.number(),
  change: z.enum(['activate', 'rollback', 'deprecate', 'bind', 'unbind']).describe('What the four-eyes review stands for; answer it at POST /v1/policies/{policy_id}/activation/approvals.'),
  requested_by: z.string(), authors: z.array(z.string()), document_hash: z.string(), expected_loosening: z.array(z.string()), deadline: z.string(),
}).describe('A four-eyes review of a change of the active policy set that the caller (an admin who wrote none of it) may answer.');

export function registerDecisionRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const config = deps.config;
  const watcher = new RunWatcher(config.DATABASE_URL, createLogger('api', config.COUNTERSIGN_LOG_LEVEL));
  app.addHook('onReady', () => watcher.start());
  app.addHook('onClose', () => watcher.stop());
  let secret: Buffer | null = null;
  const messages = { db: deps.db, temporal: deps.temporal, secret: () => (secret ??= readAttestationSecret(config.keysDir, config.COUNTERSIGN_ATTESTATION_SECRET)) };
  // Loaded once and kept (a failed load is retried): a rotation takes effect for the API at its next start,
  // and starts signed with the retired key still verify.
  let keyring: Promise<Keyring> | null = null;
  const decide = {
    keyring: () => (keyring ??= loadKeyring(config.keysDir).catch((err: unknown) => { keyring = null; throw err; })),
    db: deps.db,
    temporal: deps.temporal,
    taskQueue: config.COUNTERSIGN_TASK_QUEUE,
    policies: deps.policies,
    ...(deps.catalogs ? { catalogs: deps.catalogs } : {}),
    windows: {
      override_sec: config.COUNTERSIGN_OVERRIDE_WINDOW,
      outcome_sec: config.COUNTERSIGN_OUTCOME_WINDOW,
      override_groups: config.COUNTERSIGN_OVERRIDE_GROUPS.split(',').map((g) => g.trim()).filter(Boolean),
      override_timeout_sec: config.COUNTERSIGN_OVERRIDE_TIMEOUT,
      remind_before: remindBeforeSetting(config.COUNTERSIGN_REMIND_BEFORE, durationSeconds),
    },
    crashAfterStart: config.COUNTERSIGN_CRASH_AT === 'after-workflow-start',
  };

  r.post('/v1/decisions', {
    onRequest: authenticated(deps, ['agent']),
    schema: {
      tags: ['decisions'],
      summary: "Ask for a decision before a tool call, as the key's agent (agent.id may be left out; another agent's id is 403 unless the key may act for it)",
      body: DecisionRequestBody,
      response: {
        200: DecisionResult.describe(`The decision. Header \`${REPLAYED_HEADER}: true\` when it was answered from an earlier request under the same idempotency_key (the decision may already have been used), absent otherwise.`),
        400: Problem, 401: Problem, 403: Problem, 422: Problem, 503: Problem,
      },
    },
  }, async (req, reply) => {
    // Checked here, so the agent hears of a refused callback_url at once, and again at delivery (the name may
    // resolve elsewhere by then).
    if (req.body.callback_url !== undefined) await requireSafeCallbackUrl(req.body.callback_url, { allowPrivate: config.COUNTERSIGN_CALLBACK_ALLOW_PRIVATE, ...(deps.callbackResolver ? { resolve: deps.callbackResolver } : {}) });
    const { result, replayed } = await requestDecisionAnswer(decide, principalOf(req), req.body, requestTrace(req.headers.traceparent));
    if (replayed) void reply.header(REPLAYED_HEADER, 'true');
    return result;
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
    const p = principalOf(req);
    // An agent reads only the runs it asked for: another's is "not found", as another tenant's is.
    return waitForDecision({ db: deps.db, temporal: deps.temporal, watcher }, p.tenant_id, req.params.id, req.query.wait, readsOnlyOwn(p) ? p.id : undefined);
  });

  r.post('/v1/decisions/:id/approvals', {
    onRequest: authenticated(deps, ['approver']),
    schema: {
      tags: ['approvals'],
      summary: 'Approve or reject a decision waiting for approval; answers at once whether the answer counted',
      params: DecisionIdParams,
      body: AnswerBody,
      response: { 200: AnswerResultSchema, 401: Problem, 403: Problem, 404: Problem, 409: Problem, 503: Problem },
    },
  }, async (req) => answerApproval(messages, principalOf(req), req.params.id, req.body, req.body.channel ?? 'api'));

  r.post('/v1/decisions/:id/override', {
    onRequest: authenticated(deps, ['agent', 'admin']),
    schema: {
      tags: ['decisions'],
      summary: 'Ask to lift a DENY: opens an approval round for the override approvers',
      params: DecisionIdParams,
      body: OverrideBody,
      response: { 202: OverrideResultSchema, 401: Problem, 403: Problem, 404: Problem, 409: Problem, 503: Problem },
    },
  }, async (req, reply) => {
    const res = await requestOverride(messages, principalOf(req), req.params.id, req.body.justification);
    return reply.status(202).send(res);
  });

  r.post('/v1/decisions/:id/outcome', {
    onRequest: authenticated(deps, ['agent']),
    schema: {
      tags: ['decisions'],
      summary: "Report what the tool did; the run's output rules are checked against it",
      params: DecisionIdParams,
      body: Outcome,
      response: { 200: OutcomeResultSchema, 401: Problem, 403: Problem, 404: Problem, 409: Problem, 503: Problem },
    },
  }, async (req) => reportOutcome(messages, principalOf(req), req.params.id, req.body));

  r.get('/v1/approvals', {
    onRequest: authenticated(deps, ['approver', 'admin']),
    schema: {
      tags: ['approvals'],
      summary: "What waits for the caller's answer, soonest deadline first: approval and override rounds of its groups (approvers), and four-eyes policy reviews it may answer (admins)",
      querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(500).default(100) }),
      response: { 200: z.strictObject({ items: z.array(z.union([PendingApprovalSchema, PendingReviewSchema])) }), 401: Problem, 403: Problem },
    },
  }, async (req) => {
    const p = principalOf(req);
    const [rounds, reviews] = await Promise.all([
      p.roles.includes('approver') ? pendingApprovals(messages, p, req.query.limit) : [],
      pendingReviews(deps.db, p, req.query.limit),
    ]);
    return { items: [...rounds, ...reviews].sort((a, b) => a.deadline.localeCompare(b.deadline)).slice(0, req.query.limit) };
  });
}
