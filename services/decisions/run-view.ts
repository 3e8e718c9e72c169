import type { Constraints, Decision, Evaluation, MatchedRule } from '../../schemas/decision.ts';
import type { EventData, EventType } from '../../schemas/events.ts';

/**
 * The state of one decision run, folded from its events. The workflow, the receipt builder, the API's read
 * path and the auditor's replay all fold with this one `evolve`, so they cannot disagree about a run.
 * Pure and deterministic: safe in workflow code.
 */
export type RunView = {
  decision_id: string;
  tenant_id: string;
  agent_id: string;
  requested_by: string;
  request_digest: string;
  args_digest: string | null;
  receipt: { digest: string; head_version: number; signature: { alg: 'Ed25519'; key_id: string; value: string } } | null;
  action: { tool: string; operation?: string | undefined; topic?: string | undefined; capability?: string | undefined };
  status: 'requested' | 'pending_approval' | 'final';
  decision: Decision | null;
  reason: string;
  matched_rule: string | null;
  matched_rules: MatchedRule[];
  constraints: Constraints;
  snapshot_hash: string | null;
  policies: Array<{ policy_id: string; version: number; hash: string }>;
  evaluation: Evaluation | null;
  finalized_via: string | null;
  events: number;
};

export type RunEvent = { [K in EventType]: { type: K; data: EventData<K> } }[EventType];

export function initialRunView(): RunView | null {
  return null;
}

export function evolve(view: RunView | null, event: RunEvent): RunView | null {
  switch (event.type) {
    case 'DecisionRequested': {
      const d = event.data;
      return {
        decision_id: d.decision_id,
        tenant_id: d.tenant_id,
        agent_id: d.request.agent.id,
        requested_by: d.requested_by,
        request_digest: d.request_digest,
        args_digest: d.args_digest,
        receipt: null,
        action: { tool: d.request.action.tool, operation: d.request.action.operation, topic: d.request.action.topic, capability: d.request.action.capability },
        status: 'requested',
        decision: null,
        reason: '',
        matched_rule: null,
        matched_rules: [],
        constraints: {},
        snapshot_hash: null,
        policies: [],
        evaluation: null,
        finalized_via: null,
        events: 1,
      };
    }
    case 'PolicyEvaluated': {
      if (!view) return view;
      const e = event.data.evaluation;
      return {
        ...view,
        status: e.decision === 'REQUIRE_APPROVAL' ? 'pending_approval' : view.status,
        decision: e.decision,
        reason: e.reason,
        matched_rule: e.matched_rule,
        matched_rules: e.matched_rules,
        constraints: e.constraints,
        snapshot_hash: e.snapshot_hash,
        policies: event.data.policies,
        evaluation: e,
        events: view.events + 1,
      };
    }
    case 'DecisionFinalized': {
      if (!view) return view;
      const d = event.data;
      return { ...view, status: 'final', decision: d.decision, reason: d.reason, matched_rule: d.matched_rule, constraints: d.constraints, finalized_via: d.via, events: view.events + 1 };
    }
    case 'ReceiptIssued':
      if (!view) return view;
      return { ...view, receipt: { digest: event.data.receipt_digest, head_version: event.data.head_version, signature: event.data.signature }, events: view.events + 1 };
    case 'PolicyActivated':
      return view;
    default: {
      const never: never = event;
      return never;
    }
  }
}

export function foldRun(events: Iterable<RunEvent>): RunView | null {
  let view = initialRunView();
  for (const e of events) view = evolve(view, e);
  return view;
}
