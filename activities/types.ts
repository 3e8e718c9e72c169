import type { NewEvent } from '../schemas/events.ts';

/** Activity signatures, importable by workflow code (types only: no I/O crosses this file). */
export type AppendRunEventsInput = {
  decisionId: string;
  tenantId: string;
  expectedVersion: number;
  events: NewEvent[];
  /** Written in the same transaction as the run's first events, so the key outlives Temporal's retention. */
  idempotency?: { key: string; requestDigest: string };
  workflowId: string;
};
export type AppendRunEventsResult = { streamVersion: number; duplicate: boolean };

export type IssueReceiptInput = { decisionId: string; tenantId: string; headVersion: number; workflowId: string };

export interface Activities {
  appendRunEvents(input: AppendRunEventsInput): Promise<AppendRunEventsResult>;
  issueReceipt(input: IssueReceiptInput): Promise<{ streamVersion: number }>;
}
