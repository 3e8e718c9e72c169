import { condition, defineQuery, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Decision, DecisionRequest, DecisionResult, Evaluation } from '../schemas/decision.ts';
import type { NewEvent } from '../schemas/events.ts';
import type { Activities } from '../activities/types.ts';
import { runEventId } from '../services/decisions/ids.ts';
import { evolve, type RunView } from '../services/decisions/run-view.ts';

export type DecisionWorkflowInput = {
  decisionId: string;
  tenantId: string;
  requestedBy: string;
  request: DecisionRequest;
  requestDigest: string;
  argsDigest: string | null;
  idempotencyKey: string | null;
  evaluation: Evaluation;
  policies: Array<{ policy_id: string; version: number; hash: string }>;
  defaultDecision: Decision;
};

export type DecisionStatus = { result: DecisionResult; requestDigest: string };

/** Defined once; the API and tests import these same objects (style item 2). */
export const statusQuery = defineQuery<DecisionStatus | null>('status');

const { appendRunEvents, issueReceipt } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '10 seconds', nonRetryableErrorTypes: ['CountersignError'] },
});

export function toResult(view: RunView): DecisionResult {
  return {
    decision_id: view.decision_id,
    decision: view.decision!,
    status: view.status === 'final' ? 'final' : 'pending_approval',
    reason: view.reason,
    matched_rule: view.matched_rule,
    matched_rules: view.matched_rules,
    constraints: view.constraints,
    snapshot_hash: view.snapshot_hash ?? '',
  };
}

/**
 * One decision, durably. Deterministic code only: the decision was evaluated (purely) by the API before the
 * start, and arrives as input together with the snapshot hash; this records it and, for final decisions,
 * finalizes at once. The clock, ids and I/O come from Temporal and activities.
 */
export async function decisionWorkflow(input: DecisionWorkflowInput): Promise<DecisionResult> {
  let view: RunView | null = null;
  let version = 0;
  const pending: NewEvent[] = [];
  const record = (e: Omit<NewEvent, 'eventId'>) => {
    const event = { ...e, eventId: runEventId(input.decisionId, version + pending.length + 1) } as NewEvent;
    pending.push(event);
    view = evolve(view, event);
  };
  const flush = async (first = false) => {
    const events = pending.splice(0);
    const res = await appendRunEvents({
      decisionId: input.decisionId,
      tenantId: input.tenantId,
      expectedVersion: version,
      events,
      workflowId: workflowInfo().workflowId,
      ...(first && input.idempotencyKey ? { idempotency: { key: input.idempotencyKey, requestDigest: input.requestDigest } } : {}),
    });
    version = res.streamVersion;
  };

  // Answered from the input as soon as the workflow runs, before any event is written: a retry of the same
  // idempotency key can read the decision even while the first append is still in flight.
  const initial: DecisionStatus = {
    requestDigest: input.requestDigest,
    result: {
      decision_id: input.decisionId,
      decision: input.evaluation.decision,
      status: input.evaluation.decision === 'REQUIRE_APPROVAL' ? 'pending_approval' : 'final',
      reason: input.evaluation.reason,
      matched_rule: input.evaluation.matched_rule,
      matched_rules: input.evaluation.matched_rules,
      constraints: input.evaluation.constraints,
      snapshot_hash: input.evaluation.snapshot_hash,
    },
  };
  setHandler(statusQuery, () => (view && view.decision ? { requestDigest: input.requestDigest, result: toResult(view) } : initial));

  record({
    type: 'DecisionRequested',
    data: {
      decision_id: input.decisionId,
      tenant_id: input.tenantId,
      request: input.request,
      request_digest: input.requestDigest,
      args_digest: input.argsDigest,
      idempotency_key: input.idempotencyKey,
      requested_by: input.requestedBy,
    },
  });
  record({ type: 'PolicyEvaluated', data: { evaluation: input.evaluation, policies: input.policies, default_decision: input.defaultDecision } });

  if (input.evaluation.decision !== 'REQUIRE_APPROVAL') {
    const e = input.evaluation;
    record({ type: 'DecisionFinalized', data: { decision: e.decision, reason: e.reason, matched_rule: e.matched_rule, constraints: e.constraints, via: 'policy' } });
    await flush(true);
    await issueReceipt({ decisionId: input.decisionId, tenantId: input.tenantId, headVersion: version, workflowId: workflowInfo().workflowId });
    return toResult(view!);
  }

  await flush(true);
  // Approval rounds arrive with the decision-workflow issue; until then a pending run waits durably.
  await condition(() => view?.status === 'final');
  await flush();
  await issueReceipt({ decisionId: input.decisionId, tenantId: input.tenantId, headVersion: version, workflowId: workflowInfo().workflowId });
  return toResult(view!);
}
