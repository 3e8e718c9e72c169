import { WorkflowIdReusePolicy, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { isGrpcServiceError, type Client } from '@temporalio/client';
import type { DecisionRequest, DecisionRequestBody, DecisionResult, Evaluation } from '../../schemas/decision.ts';
import { reasonFields } from './reason-code.ts';
import { overrideWindows } from './override-settings.ts';
import { withApprovalTimeout } from './approval-timeout.ts';
import { decisionWorkflow, statusQuery, type RunWindows } from '../../workflows/decision-workflow.ts';
import { CountersignError } from '../errors.ts';
import type { Db } from '../events/db.ts';
import { isConnectionError, withTenant } from '../events/db.ts';
import { catalogFact, catalogOf, counterIncrements, enrichRequest, evaluate, perCallRuleIssues, requiredCounters, type Facts } from '../policy/index.ts';
import { loadCatalog } from '../catalog/catalog-store.ts';
import type { CatalogReader } from '../catalog/catalog-cache.ts';
import { readCounters } from './counters.ts';
import { hasEvaluator } from '../judgment/evaluator-config.ts';
import { sha256Digest } from '../receipts/canonical.ts';
import type { Principal } from '../identity/principals.ts';
import { requireAgent } from '../identity/agent-binding.ts';
import type { ActivePolicies } from './active-policies.ts';
import { decisionIdFor } from './decision-id.ts';
import { workflowIdFor } from './ids.ts';
import { readDecision } from './read-decision.ts';
import type { Keyring } from '../receipts/keyring.ts';
import { checkRunStart, signRunStart, startEventsOf } from './start-attestation.ts';
import { defaultPayloadConverter } from '@temporalio/common';
import type { DecisionWorkflowInput } from '../../workflows/decision-workflow.ts';
import type { TraceContext } from '../../schemas/events.ts';

const START_DEADLINE_MS = 5_000;

export type DecideDeps = {
  db: Db;
  temporal: Client;
  taskQueue: string;
  policies: ActivePolicies;
  /** The tenants' tool catalogs (cached); without it each decision reads the catalog from Postgres. */
  catalogs?: CatalogReader;
  windows: RunWindows;
  /** The receipt keyring: the API signs each run's start with it, and the worker refuses a start without it. */
  keyring: () => Promise<Keyring>;
  now?: () => Date;
  /** Test only: die right after Temporal acknowledged the start, before answering (config COUNTERSIGN_CRASH_AT). */
  crashAfterStart?: boolean;
};

/**
 * Ask for a decision: bind the agent to the key (before anything is read, counted or written), evaluate purely
 * against the tenant's compiled snapshot, start the run's workflow with an id derived from (tenant, principal,
 * idempotency key), and answer as soon as Temporal has acknowledged the start. From then the decision is
 * durable and its events follow from the workflow.
 */
export async function requestDecision(deps: DecideDeps, principal: Principal, body: DecisionRequestBody, trace?: TraceContext): Promise<DecisionResult> {
  return (await requestDecisionAnswer(deps, principal, body, trace)).result;
}

/**
 * requestDecision, saying whether the answer came from an earlier request under the same idempotency key
 * (`replayed`) rather than from this one: a caller that executes once per decision must know that the decision
 * it got back may already have been used.
 */
export async function requestDecisionAnswer(deps: DecideDeps, principal: Principal, body: DecisionRequestBody, trace?: TraceContext): Promise<{ result: DecisionResult; replayed: boolean }> {
  const tenantId = principal.tenant_id;
  // An agent is who its key says: the agent id policies, bindings and counters use is the key's own, or one
  // it may act for. Another agent's id is refused here and writes nothing.
  const agent = requireAgent(principal, body.agent.id);
  const request: DecisionRequest = { ...body, agent: { id: agent.agentId } };
  const decisionId = decisionIdFor(tenantId, principal.id, request.idempotency_key);
  const requestDigest = sha256Digest(request);
  const key = request.idempotency_key;
  // Per-call rules that would loosen (approval settings) or that cannot run within the CEL budget are refused
  // before anything is read or written.
  const issues = perCallRuleIssues(request, (deps.now ?? (() => new Date()))()).map((i) => ({ path: ['body', ...i.path].join('.'), message: i.message }));
  if (issues.length > 0) {
    throw new CountersignError('unprocessable', `policy_rules refused: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { errors: issues });
  }

  // A known key is answered from the record, never evaluated again (policies may have changed since).
  if (key !== undefined) {
    const prior = await priorDecision(deps, tenantId, decisionId, key, requestDigest);
    if (prior) return { result: prior, replayed: true };
  }

  const set = await deps.policies.effective(tenantId, request.agent.id).catch((err: unknown) => {
    throw isConnectionError(err) ? CountersignError.dependency('postgres', err) : err;
  });
  const now = (deps.now ?? (() => new Date()))();
  // The tenant's tool catalog tags requests for the tools it knows (only ever adding to the agent's tags).
  // The tags and the catalog version are recorded as a fact, and evaluate() applies them, so DecisionRequested
  // keeps what the agent sent and replay re-derives the decision (and checks the tags) from the log alone.
  const catalog = await (deps.catalogs ?? { current: (t: string) => loadCatalog(deps.db, t) }).current(tenantId);
  const catalogFacts: Facts = catalog.version > 0 ? { tool_catalog: catalogFact(catalog, request) } : {};
  const enriched = catalog.version > 0 ? enrichRequest(catalogOf(catalog.sources), request) : request;
  // Limit rules need counter values: read them first, so the evaluation stays pure and replayable.
  const specs = requiredCounters(set.snapshot, enriched);
  const facts: Facts = specs.length ? { counters: await readCounters(deps.db, tenantId, specs, now), ...catalogFacts } : catalogFacts;
  const evaluated = evaluate(set.snapshot, request, facts, now);
  // The tenant's approval_timeout replaces the timeouts the rules left to the default; the windows record it.
  const windows = overrideWindows(deps.windows, set.settings, set.snapshot, evaluated);
  const evaluation = withApprovalTimeout(evaluated, windows.approval_timeout_sec);
  // Judgment rules applied: the run asks the tenant's evaluator first, if it has one (else people decide).
  const judge = evaluation.judgment !== undefined && (await hasEvaluator(deps.db, tenantId).catch((err: unknown) => {
    throw isConnectionError(err) ? CountersignError.dependency('postgres', err) : err;
  }));
  const increments = evaluation.decision === 'DENY' ? [] : counterIncrements(set.snapshot, enriched, now).map((i) => ({ key: i.key, amount: i.amount }));
  const workflowId = workflowIdFor(tenantId, decisionId);
  const argsDigest = request.action.args ? sha256Digest(request.action.args) : null;
  const callbackUrl = request.callback_url;
  const actingPrincipal = agent.actingFor ? principal.id : undefined;
  const keyring = await deps.keyring().catch((err: unknown) => {
    throw new CountersignError('dependency_unavailable', 'the signing keyring cannot be read', { extra: { dependency: 'keyring' }, cause: err });
  });
  // The whole start, signed: the worker writes nothing for a run whose start does not carry this.
  const attestation = signRunStart(
    keyring,
    { decision_id: decisionId, tenant_id: tenantId, request, request_digest: requestDigest, args_digest: argsDigest, idempotency_key: key ?? null, requested_by: principal.id, ...(actingPrincipal ? { acting_principal: actingPrincipal } : {}), ...(trace ? { trace } : {}) },
    { evaluation, policies: set.policies, default_decision: set.defaultDecision },
    { workflow_id: workflowId, counter_increments: increments, windows, callback_url: callbackUrl ?? null, ...(judge ? { judge: true as const } : {}) },
    now,
  );

  try {
    // Bounded: with Temporal down the client would retry for ~20 s; the agent deserves a prompt 503.
    await deps.temporal.withDeadline(Date.now() + START_DEADLINE_MS, () => deps.temporal.workflow.start(decisionWorkflow, {
      taskQueue: deps.taskQueue,
      workflowId,
      // Refuse a second run for the same id even after the first closed (within retention); past
      // retention the idempotency_keys row answers above.
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      args: [{ decisionId, tenantId, requestedBy: principal.id, request, requestDigest, argsDigest, idempotencyKey: key ?? null, evaluation, policies: set.policies, defaultDecision: set.defaultDecision, windows, callbackUrl, counterIncrements: increments, attestation, ...(actingPrincipal ? { actingPrincipal } : {}), ...(judge ? { judge: true } : {}), ...(trace ? { trace } : {}) }],
    }));
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError && key !== undefined) {
      const prior = await priorDecision(deps, tenantId, decisionId, key, requestDigest, true);
      if (prior) return { result: prior, replayed: true };
    }
    throw asTemporalError(err);
  }
  if (deps.crashAfterStart) process.kill(process.pid, 'SIGKILL');
  return { result: resultAtStart(decisionId, evaluation, trace), replayed: false };
}

async function priorDecision(deps: DecideDeps, tenantId: string, decisionId: string, key: string, digest: string, started = false): Promise<DecisionResult | null> {
  let row;
  try {
    // The decision id already names the principal: its row is this principal's use of the key, no one else's.
    row = (await withTenant(deps.db, tenantId, (c) => c.query<{ request_digest: string }>('SELECT request_digest FROM idempotency_keys WHERE tenant_id = $1 AND decision_id = $2', [tenantId, decisionId]))).rows[0];
  } catch (err) {
    throw isConnectionError(err) ? CountersignError.dependency('postgres', err) : err;
  }
  if (row) {
    if (row.request_digest !== digest) throw mismatch(key);
    return readDecision(deps, tenantId, decisionId);
  }
  if (!started) return null;
  // Started, but its first events are not written yet: the workflow answers from its input, once that input
  // is shown to be one the API signed. Anyone who can reach Temporal could have started a run under this id
  // first, with a decision of their own making; its answer is never handed to the agent.
  try {
    const input = await checkStartedRun(deps, tenantId, decisionId, key);
    if (input.requestDigest !== digest) throw mismatch(key);
    // A query waits for a worker; with none polling (all down, or the run's first task not taken yet) the run's
    // signed start already says what was decided, and nothing can have been recorded after it.
    const status = await deps.temporal
      .withDeadline(Date.now() + START_DEADLINE_MS, () => deps.temporal.workflow.getHandle(workflowIdFor(tenantId, decisionId)).query(statusQuery))
      .catch(() => null);
    if (status && status.requestDigest !== digest) throw mismatch(key);
    return status?.result ?? resultAtStart(input.decisionId, input.evaluation, input.trace);
  } catch (err) {
    if (err instanceof CountersignError) throw err;
    // The run exists in Temporal but cannot say what it decided (no worker answers its queries, or its
    // history is gone): never a 500, and never a second evaluation under the same key.
    throw new CountersignError('dependency_unavailable', `the run for idempotency_key ${JSON.stringify(key)} exists but its decision cannot be read now; retry later`, {
      extra: { dependency: 'temporal' },
      cause: err,
    });
  }
}

/** The decision a run is started with: what the API answers then, and a retry that finds the run before its first events. */
function resultAtStart(decisionId: string, e: Evaluation, trace?: TraceContext): DecisionResult {
  const status = e.decision === 'REQUIRE_APPROVAL' ? 'pending_approval' : 'final';
  return {
    decision_id: decisionId,
    decision: e.decision,
    status,
    reason: e.reason,
    matched_rule: e.matched_rule,
    matched_rules: e.matched_rules,
    constraints: e.constraints,
    snapshot_hash: e.snapshot_hash,
    ...reasonFields({ decision: e.decision, status, matched_rule: e.matched_rule, matched_rules: e.matched_rules, finalized_via: null }),
    ...(trace ? { trace_id: trace.trace_id } : {}),
  };
}

/** The run's start input, read from its history; a conflict unless it carries the API's signature. */
async function checkStartedRun(deps: DecideDeps, tenantId: string, decisionId: string, key: string): Promise<DecisionWorkflowInput> {
  const workflowId = workflowIdFor(tenantId, decisionId);
  const history = await deps.temporal.workflow.getHandle(workflowId).fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  let input: DecisionWorkflowInput | null = null;
  try {
    input = payload ? defaultPayloadConverter.fromPayload<DecisionWorkflowInput>(payload) : null;
  } catch {
    input = null;
  }
  const { requested, evaluated } = input ? startEventsOf(input, workflowId) : { requested: null, evaluated: null };
  const check = input ? checkRunStart(requested, evaluated, (await deps.keyring()).publicKeys(), workflowId) : { ok: false as const, reason: 'no input' };
  if (!check.ok) {
    throw new CountersignError('conflict', `idempotency_key ${JSON.stringify(key)} names a run that Countersign did not start; ask with another key`, {
      errors: [{ path: 'idempotency_key', message: 'taken by a run Countersign did not start' }],
    });
  }
  return input!;
}

function mismatch(key: string): CountersignError {
  return new CountersignError('idempotency_mismatch', `idempotency_key ${JSON.stringify(key)} was used before with a different request`, {
    errors: [{ path: 'idempotency_key', message: 'reused with a different request' }],
  });
}

/** gRPC UNAVAILABLE / DEADLINE_EXCEEDED / connection failures mean Temporal is down: 503, never a made-up decision. */
export function asTemporalError(err: unknown): unknown {
  if (err instanceof CountersignError) return err;
  const grpc = isGrpcServiceError(err) ? err : isGrpcServiceError((err as { cause?: unknown })?.cause) ? (err as { cause: unknown }).cause : null;
  const code = (grpc as { code?: number } | null)?.code;
  if (code === 14 || code === 4 || /connect|UNAVAILABLE|DEADLINE|transport/i.test(String((err as Error)?.message))) {
    return CountersignError.dependency('temporal', err);
  }
  return err;
}
