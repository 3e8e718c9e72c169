import { RECEIPT_VERSION, type Receipt, type ReceiptApprovalRound } from '../../schemas/receipt.ts';
import { isKnownEventType, type StoredEvent } from '../../schemas/events.ts';
import { foldRun, type RunEvent } from '../decisions/run-view.ts';
import { legacyStreamId } from '../events/stream-ids.ts';
import { sha256Digest } from './canonical.ts';

/** What a receipt is built from: stored events, or the rows of an append about to be stored (their position aside). */
export type ReceiptSource = Pick<StoredEvent, 'type' | 'data' | 'stream_id' | 'hash' | 'stream_version' | 'recorded_at'>;

/**
 * Builds a run's receipt from a prefix of its stored events alone (no database, no clock), so the auditor's
 * replay from Kafka rebuilds the bytes the worker signed. A run may be receipted more than once (when it
 * becomes final, then after an override or an outcome): each ReceiptIssued covers exactly the events before
 * it, so callers pass that prefix (or the whole stream, for its latest receipt). The receipt's head is the
 * prefix's last event.
 */
export function buildReceipt(events: readonly ReceiptSource[]): Receipt | null {
  // A receipt never covers the ReceiptIssued that records it: given a whole stream ending in one, this
  // rebuilds the receipt that event signed.
  let end = events.length;
  while (end > 0 && events[end - 1]!.type === 'ReceiptIssued') end -= 1;
  const prefix = events.slice(0, end);
  const view = foldRun(prefix.filter((e) => isKnownEventType(e.type)).map((e) => ({ type: e.type, data: e.data }) as RunEvent));
  const head = prefix[prefix.length - 1];
  if (!view || !head || !view.evaluation || view.decision === null) return null;
  const action: Receipt['action'] = { tool: view.action.tool, args_digest: view.args_digest };
  if (view.action.operation !== undefined) action.operation = view.action.operation;
  if (view.action.topic !== undefined) action.topic = view.action.topic;
  if (view.action.capability !== undefined) action.capability = view.action.capability;
  if (view.edited_args_digest !== null) action.edited_args_digest = view.edited_args_digest;
  const approvals: Receipt['approvals'] = view.rounds.flatMap((r) =>
    [...r.approvals.map((a) => ({ ...a, verdict: 'approve' as const })), ...r.rejections.map((a) => ({ ...a, verdict: 'reject' as const }))]
      .sort((x, y) => x.at.localeCompare(y.at))
      .map((a) => ({
        approver_id: a.approver_id, verdict: a.verdict, channel: a.channel, at: a.at, ...(a.comment !== undefined ? { comment: a.comment } : {}),
        ...(a.on_behalf_of !== undefined ? { on_behalf_of: a.on_behalf_of } : {}),
        ...('edited_args_digest' in a && a.edited_args_digest !== undefined ? { edited_args_digest: a.edited_args_digest } : {}),
      })),
  );
  const approvalRounds: ReceiptApprovalRound[] = view.rounds.flatMap((r) => (r.requirements && r.steps ? [{
    round: r.round,
    requirements: r.requirements.map((q) => ({
      id: q.id, policy_id: q.policy_id, version: q.version, rule: q.rule, levels: q.levels, on_timeout: q.on_timeout, level: q.level, status: q.status, approved_by: q.approvals,
    })),
    levels: r.steps.map((x) => ({ level: x.level, groups: x.groups, deadline: x.deadline, asked: x.asked })),
  }] : []));
  const overrides: Receipt['overrides'] = view.overrides.map((o) => ({
    requested_by: o.requested_by,
    justification: o.justification,
    requested_at: o.requested_at,
    outcome: o.outcome,
    ...(o.decided_at !== undefined ? { decided_at: o.decided_at } : {}),
  }));
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
    approvals,
    ...(approvalRounds.length > 0 ? { approval_rounds: approvalRounds } : {}),
    overrides,
    outcome: view.outcome
      ? { status: view.outcome.status, reported_at: view.outcome.at, output_digest: view.outcome.output_digest, violations: view.outcome.violations }
      : null,
    stream_id: head.stream_id,
    head_hash: head.hash,
    head_version: head.stream_version,
    issued_at: head.recorded_at,
  };
}

/**
 * The rebuilt receipt in the form that was signed (its digest `digest`), or null when neither form is. A
 * receipt signed before migration 0014 names its stream as it was then (`run-<decision>`, legacyStreamId);
 * the rest of it must still rebuild byte for byte.
 */
export function asSigned(receipt: Receipt, digest: string): Receipt | null {
  if (sha256Digest(receipt) === digest) return receipt;
  const legacy = legacyStreamId(receipt.stream_id);
  if (legacy === null) return null;
  const old = { ...receipt, stream_id: legacy };
  return sha256Digest(old) === digest ? old : null;
}

/** The receipts a run's stream records: each ReceiptIssued with the prefix it covers. */
export function issuedReceipts(events: readonly StoredEvent[]): Array<{ issued: StoredEvent; prefix: StoredEvent[] }> {
  const out = [];
  for (let i = 0; i < events.length; i++) if (events[i]!.type === 'ReceiptIssued') out.push({ issued: events[i]!, prefix: events.slice(0, i) });
  return out;
}
