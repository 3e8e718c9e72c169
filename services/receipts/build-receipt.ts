import { RECEIPT_VERSION, type Receipt } from '../../schemas/receipt.ts';
import { isKnownEventType, type StoredEvent } from '../../schemas/events.ts';
import { foldRun, type RunEvent } from '../decisions/run-view.ts';

/**
 * Builds a run's receipt from its stored events alone (no database, no clock), so the auditor's replay from
 * Kafka rebuilds the same bytes the worker signed. `events` are one stream in version order; a ReceiptIssued
 * event, and anything after it, is not part of the receipt it describes.
 */
export function buildReceipt(events: readonly StoredEvent[]): Receipt | null {
  const cut = events.findIndex((e) => e.type === 'ReceiptIssued');
  const body = cut === -1 ? events : events.slice(0, cut);
  const view = foldRun(body.filter((e) => isKnownEventType(e.type)).map((e) => ({ type: e.type, data: e.data }) as RunEvent));
  const head = body[body.length - 1];
  if (!view || !head || !view.evaluation || view.decision === null) return null;
  const action: Receipt['action'] = { tool: view.action.tool, args_digest: view.args_digest };
  if (view.action.operation !== undefined) action.operation = view.action.operation;
  if (view.action.topic !== undefined) action.topic = view.action.topic;
  if (view.action.capability !== undefined) action.capability = view.action.capability;
  return {
    receipt_version: RECEIPT_VERSION,
    decision_id: view.decision_id,
    tenant_id: view.tenant_id,
    agent_id: view.agent_id,
    request_digest: view.request_digest,
    action,
    decision: view.decision,
    status: view.status === 'final' ? 'final' : 'pending_approval',
    reason: view.reason,
    matched_rule: view.matched_rule,
    matched_rules: view.matched_rules,
    policies: view.policies,
    snapshot_hash: view.evaluation.snapshot_hash,
    facts: view.evaluation.facts,
    evaluated_at: view.evaluation.now,
    constraints: view.constraints,
    approvals: [],
    overrides: [],
    outcome: null,
    stream_id: head.stream_id,
    head_hash: head.hash,
    head_version: head.stream_version,
    issued_at: head.recorded_at,
  };
}
