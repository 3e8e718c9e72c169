/**
 * The Countersign SDK for agents (`import { Countersign } from 'countersign/sdk'`).
 *
 *   const cs = new Countersign({ url, apiKey });
 *   const refund = cs.guard(refundTool, (order, amount) => ({ agent: { id: 'support-bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount } }));
 *   await refund('A-17', 120);   // asks, waits for approval if needed, throws DecisionDenied on DENY, runs, reports
 */
export { Countersign, type Acknowledgement, type Outcome, type SimulateInput } from './client.ts';
export { guard, type Describe, type GuardOptions } from './guard.ts';
export { Transport, type RequestOptions, type TransportOptions } from './transport.ts';
export { ApprovalTimeout, ArgumentsEdited, ConstraintExceeded, CountersignApiError, CountersignNetworkError, DecisionDenied, type ProblemBody } from './errors.ts';
export type { DecisionRequestInput, DecisionResult } from '../../schemas/decision.ts';
