import { randomUUID } from 'node:crypto';
import type { DecisionRequestInput, DecisionResult } from '../../schemas/decision.ts';
import type { DecisionSummary } from '../../schemas/api.ts';
import type { Decision } from '../../schemas/decision.ts';

export type DecisionListFilters = {
  limit?: number;
  cursor?: string;
  status?: 'final' | 'pending_approval';
  agent?: string;
  decision?: Decision;
  policy_id?: string;
  policy_version?: number;
  rule?: string;
  tool?: string;
  operation?: string;
  /** ISO 8601: requested at or after. */
  since?: string;
  /** ISO 8601: requested before. */
  until?: string;
};
import { ApprovalTimeout, CountersignApiError } from './errors.ts';
import { guard, type GuardOptions, type Describe } from './guard.ts';
import { Transport, type TransportOptions } from './transport.ts';

export type Outcome = { status: 'succeeded' | 'failed'; output?: unknown };
export type SimulateInput = { request: DecisionRequestInput; policy?: unknown; at?: string };
/** `accepted: false` when the server does not offer the endpoint yet (it answered "no route"). */
export type Acknowledgement = { accepted: boolean; response?: unknown };

/** Longest single long-poll the API allows (GET /v1/decisions/{id}?wait=N). */
const MAX_POLL_SECONDS = 60;

/**
 * The typed client agents use. Every write that may be retried carries an idempotency key, so a retry after
 * a network error names the same run and never asks twice.
 */
export class Countersign {
  readonly transport: Transport;
  constructor(opts: TransportOptions) {
    this.transport = new Transport(opts);
  }

  /** Ask for a decision. Without an idempotency_key one is generated, and reused by every retry. */
  async decide(request: DecisionRequestInput): Promise<DecisionResult> {
    const body = { ...request, idempotency_key: request.idempotency_key ?? randomUUID() };
    return this.transport.request<DecisionResult>('POST', '/v1/decisions', body);
  }

  async getDecision(id: string, waitSeconds = 0): Promise<DecisionResult> {
    return this.transport.request<DecisionResult>('GET', `/v1/decisions/${encodeURIComponent(id)}`, undefined, { query: { wait: waitSeconds || undefined }, extraTimeoutMs: waitSeconds * 1000 });
  }

  /** Long-polls until the decision is final; throws ApprovalTimeout when `timeout` ms pass first. */
  async waitForDecision(id: string, opts: { timeout: number }): Promise<DecisionResult> {
    const deadline = Date.now() + opts.timeout;
    for (;;) {
      const left = deadline - Date.now();
      const current = await this.getDecision(id, Math.max(0, Math.min(MAX_POLL_SECONDS, Math.floor(left / 1000))));
      if (current.status === 'final') return current;
      if (Date.now() >= deadline - 50) throw new ApprovalTimeout(id, opts.timeout);
    }
  }

  /** Ask a human to override a DENY of one of your own runs. */
  async requestOverride(id: string, justification: string): Promise<Acknowledgement> {
    return this.tolerateMissingRoute(() => this.transport.request('POST', `/v1/decisions/${encodeURIComponent(id)}/override`, { justification }));
  }

  /** Report what the tool did; output rules of the policy are checked against it. */
  async reportOutcome(id: string, outcome: Outcome): Promise<Acknowledgement> {
    return this.tolerateMissingRoute(() => this.transport.request('POST', `/v1/decisions/${encodeURIComponent(id)}/outcome`, { status: outcome.status, output: outcome.output ?? null }));
  }

  /** Evaluate without starting anything (against the active policies, or a given draft). */
  async simulate(input: SimulateInput | DecisionRequestInput): Promise<DecisionResult> {
    const body = 'request' in input ? input : { request: input };
    return this.transport.request<DecisionResult>('POST', '/v1/policy/simulate', body);
  }

  /** The monitor: decisions newest first, narrowed by any of its filters (GET /v1/decisions). */
  async listDecisions(query: DecisionListFilters = {}): Promise<{ items: DecisionSummary[]; next_cursor: string | null }> {
    return this.transport.request('GET', '/v1/decisions', undefined, { query });
  }

  /** Wraps a tool so that every call asks first (see guard.ts). */
  guard<A extends unknown[], R>(tool: (...args: A) => Promise<R> | R, describe: Describe<A>, opts: GuardOptions<A> = {}): (...args: A) => Promise<R> {
    return guard(this, tool, describe, opts);
  }

  private async tolerateMissingRoute(call: () => Promise<unknown>): Promise<Acknowledgement> {
    try {
      return { accepted: true, response: await call() };
    } catch (err) {
      if (err instanceof CountersignApiError && err.routeMissing) return { accepted: false };
      throw err;
    }
  }
}
