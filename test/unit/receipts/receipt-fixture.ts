import { sha256Digest } from '../../../services/receipts/canonical.ts';
import type { Receipt } from '../../../schemas/receipt.ts';

/** A full receipt: an approved refund whose outcome was reported, so every section is populated. */
export function sampleReceipt(overrides: Partial<Receipt> = {}): Receipt {
  return {
    receipt_version: 1,
    decision_id: 'dec_01J9Z3K4Q8',
    tenant_id: 'acme',
    agent_id: 'support-bot',
    request_digest: sha256Digest({ agent: { id: 'support-bot' }, action: { tool: 'payment_tool' } }),
    action: {
      tool: 'payment_tool',
      operation: 'Refund',
      topic: 'job.payments.refund',
      capability: 'payments.refund',
      args_digest: sha256Digest({ order: 'A-17' }),
    },
    decision: 'REQUIRE_APPROVAL',
    status: 'final',
    reason: 'refund above 500 needs approval',
    matched_rule: 'big-refunds',
    matched_rules: [{ policy_id: 'refunds', version: 3, rule: 'big-refunds', decision: 'REQUIRE_APPROVAL' }],
    policies: [{ policy_id: 'refunds', version: 3, hash: sha256Digest({ policy: 'refunds', v: 3 }) }],
    snapshot_hash: sha256Digest({ snapshot: 1 }),
    facts: { 'refunds.count.1h': 4, amount: 650, vendor: { status: 'approved', tags: ['a', 'é'] } },
    evaluated_at: '2025-03-14T15:09:26.535Z',
    constraints: { max_runtime_sec: 600 },
    approvals: [
      { approver_id: 'prn_alice', verdict: 'approve', channel: 'slack', at: '2025-03-14T15:12:00.000Z', comment: 'ok, known customer' },
    ],
    overrides: [],
    outcome: { status: 'succeeded', reported_at: '2025-03-14T15:13:00.000Z', output_digest: sha256Digest({ ok: true }), violations: [] },
    stream_id: 'run/dec_01J9Z3K4Q8',
    head_hash: sha256Digest({ event: 7 }),
    head_version: 7,
    issued_at: '2025-03-14T15:13:00.120Z',
    ...overrides,
  };
}

/** The same JSON value with every object's keys in reverse order. */
export function reverseKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v: unknown) => reverseKeys(v)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .reverse()
        .map((k) => [k, reverseKeys((value as Record<string, unknown>)[k])]),
    ) as T;
  }
  return value;
}
