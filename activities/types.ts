import type { DecisionResult } from '../schemas/decision.ts';
import type { NewEvent } from '../schemas/events.ts';

/** Activity signatures, importable by workflow code (types only: no I/O crosses this file). */
export type AppendRunEventsInput = {
  decisionId: string;
  tenantId: string;
  expectedVersion: number;
  events: NewEvent[];
  /** Written in the same transaction as the run's first events, so the key outlives Temporal's retention. */
  idempotency?: { key: string; requestDigest: string };
  /** Counter entries written in the same transaction (the action went ahead). */
  counters?: { at: string; entries: Array<{ key: string; amount: number }> };
  workflowId: string;
};
export type AppendRunEventsResult = { streamVersion: number; duplicate: boolean };

export type IssueReceiptInput = { decisionId: string; tenantId: string; headVersion: number; workflowId: string };

/**
 * A message the API vouches for: an HMAC over its canonical JSON with a secret only the API and the worker
 * hold. An update sent to Temporal directly, by anyone else, cannot carry a valid one.
 */
export type Attestation = { issued_at: string; mac: string };
export type Attested<T> = T & { attestation: Attestation };
export type AuthorizeInput = Attested<{ kind: string; tenant_id: string } & Record<string, unknown>>;
export type AuthorizeResult = { ok: true; principal_id: string; roles: string[]; groups: string[] } | { ok: false; reason: string };

export type NotifyInput = { decisionId: string; tenantId: string; round: number; purpose: 'request' | 'escalation'; groups: string[]; requestedBy: string };
export type Delivery = { channel: 'api' | 'cli' | 'dashboard' | 'slack' | 'email'; recipient: string; error?: string };

export type CallbackInput = { url: string; tenantId: string; decisionId: string; result: DecisionResult };

export interface Activities {
  appendRunEvents(input: AppendRunEventsInput): Promise<AppendRunEventsResult>;
  issueReceipt(input: IssueReceiptInput): Promise<{ streamVersion: number }>;
  authorize(input: AuthorizeInput): Promise<AuthorizeResult>;
  notifyApprovers(input: NotifyInput): Promise<Delivery[]>;
  deliverCallback(input: CallbackInput): Promise<{ status: number }>;
}
