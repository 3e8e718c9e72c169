import { CallToolResultSchema, ErrorCode, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { DecisionResult } from '../../schemas/decision.ts';
import { CountersignApiError, CountersignNetworkError } from '../sdk/errors.ts';
import type { Transport } from '../sdk/transport.ts';
import { checkArgumentConstraints } from './argument-constraints.ts';
import type { GatewaySettings } from './config.ts';
import { decisionRequestFor, idempotencyBase, idempotencyKeyFor } from './decision-request.ts';
import { DECISION_META, boundedOutput, constraintRefusal, deniedResult, refusedRequestResult, runtimeExceededResult, stillPendingResult, unavailableResult, withheldResult } from './tool-results.ts';
import type { Upstream } from './upstreams.ts';

/** The API's answer, checked before anything is forwarded on it; fields added by a later API are kept, not refused. */
const DecisionAnswer = z.looseObject(DecisionResult.shape);
const OutcomeAnswer = z.looseObject({ violations: z.number().int().nonnegative(), violations_found: z.array(z.looseObject({ rule: z.string(), reason: z.string() })) });

const Timeline = z.looseObject({ items: z.array(z.looseObject({ type: z.string() })) });
/** Header of a POST /v1/decisions answered from an earlier request under the same idempotency key. */
const REPLAYED_HEADER = 'idempotent-replayed';
/** How many spent decisions of one call a restarted gateway walks past before giving up (fail closed). */
const MAX_SPENT_GENERATIONS = 64;

const forwards = (d: DecisionResult) => d.status === 'final' && (d.decision === 'ALLOW' || d.decision === 'ALLOW_WITH_CONSTRAINTS');

class MalformedAnswer extends Error {}
class SpentGenerations extends Error {
  constructor(n: number) {
    super(`the last ${n} decisions of this identical call were all used already; retry with a client key (_meta["countersign/idempotency_key"])`);
  }
}
function checked<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new MalformedAnswer(`the API's answer to ${what} is malformed (${r.error.issues.slice(0, 2).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')})`);
  return r.data;
}

/** Longest single long-poll the API allows is 120 s; shorter polls notice an abandoned hold sooner. */
const POLL_SECONDS = 20;

export type CallInput = { upstream: Upstream; tool: string; args: Record<string, unknown>; clientKey: string | undefined; meta: Record<string, unknown> | undefined };
export type Waiter = { signal: AbortSignal; progress: ((message: string) => Promise<void>) | undefined };
/** A forwarded call's answer: the upstream's result, or its JSON-RPC error passed on as it was. */
type Answer = { result: CallToolResult } | { error: McpError };

/** `keys`: every idempotency key the call asked under (it moves on past spent decisions), each found in `inflight`. */
type Shared = { answer: Promise<Answer>; waiters: number; stop: AbortController; status: { message: string }; keys: Set<string> };

export type Logger = (line: string) => void;

/**
 * Governs tools/call: asks Countersign, holds REQUIRE_APPROVAL, forwards what is allowed, reports the outcome.
 *
 * Identical calls in flight (the same idempotency key: a client's retry after a reconnect, or a second copy)
 * share one decision and one execution. A decision authorises one execution: once a call was forwarded under
 * generation n of its base key, the next identical call asks under n + 1; the count is kept in memory, and a
 * restarted process learns it again from the API (a replayed decision that was already spent). A hold nobody waits for any more
 * stops without forwarding, so the retry after a disconnect finds the decision and is the one that runs.
 */
export class GovernedCalls {
  private readonly inflight = new Map<string, Shared>();
  private readonly generations = new Map<string, { n: number; expiresAt: number }>();
  private readonly background = new Set<Promise<unknown>>();

  constructor(private readonly deps: {
    api: Transport;
    settings: GatewaySettings;
    log: Logger;
    /** Whether the result must wait for the run's output-rule check (output_rules auto: the policies say). */
    checkOutput: (upstream: string, tool: string) => boolean;
    now?: () => number;
  }) {}

  async call(input: CallInput, waiter: Waiter): Promise<CallToolResult> {
    const s = this.deps.settings;
    const now = this.deps.now?.() ?? Date.now();
    const facts = { agent: s.agent, environment: s.environment, upstream: input.upstream.name, tool: input.tool, args: input.args };
    const base = idempotencyBase({ ...facts, clientKey: input.clientKey, windowSec: s.idempotency_window_sec, now });
    this.prune(now);
    const generation = this.generations.get(base)?.n ?? 0;
    const key = idempotencyKeyFor(base, generation);
    let shared = this.inflight.get(key);
    if (!shared) {
      const stop = new AbortController();
      const status = { message: 'asking Countersign' };
      const created: Shared = { waiters: 0, stop, status, keys: new Set([key]), answer: Promise.resolve({ result: { content: [] } }) };
      created.answer = this.govern(input, key, base, generation, created).finally(() => { for (const k of created.keys) this.inflight.delete(k); });
      this.inflight.set(key, created);
      shared = created;
    }
    return this.wait(shared, waiter);
  }

  /** Outcome reports still under way (report mode); awaited at shutdown. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.background]);
  }

  private async wait(shared: Shared, waiter: Waiter): Promise<CallToolResult> {
    shared.waiters++;
    let ticks: NodeJS.Timeout | undefined;
    const progress = waiter.progress;
    if (progress) {
      ticks = setInterval(() => { progress(shared.status.message).catch(() => undefined); }, this.deps.settings.progress_interval_sec * 1000);
    }
    try {
      const aborted = new Promise<never>((_, reject) => {
        const fail = () => reject(new McpError(ErrorCode.ConnectionClosed, 'the request was cancelled'));
        if (waiter.signal.aborted) fail();
        else waiter.signal.addEventListener('abort', fail, { once: true });
      });
      aborted.catch(() => undefined);
      const answer = await Promise.race([shared.answer, aborted]);
      if ('error' in answer) throw answer.error;
      return answer.result;
    } finally {
      clearInterval(ticks);
      if (--shared.waiters === 0) shared.stop.abort();
    }
  }

  private async govern(input: CallInput, key: string, base: string, generation: number, shared: Shared): Promise<Answer> {
    const s = this.deps.settings;
    const facts = { agent: s.agent, environment: s.environment, upstream: input.upstream.name, tool: input.tool, args: input.args };
    let decision: DecisionResult;
    try {
      for (let skipped = 0; ; skipped++) {
        const asked = await this.ask(decisionRequestFor(facts, key));
        decision = asked.decision;
        if (decision.status === 'pending_approval') decision = await this.hold(decision, shared);
        // An answer from the API's record under a key this process has not forwarded under (it restarted, or
        // another gateway used the key): the decision may have authorised an execution already. A decision
        // authorises one execution, so a spent one moves the call on to the next generation and a new decision.
        if (!asked.replayed || !forwards(decision) || !(await this.spent(decision.decision_id))) break;
        if (skipped + 1 >= MAX_SPENT_GENERATIONS) throw new SpentGenerations(skipped + 1);
        generation++;
        key = idempotencyKeyFor(base, generation);
        // In the same turn as the advance: an identical call arriving now asks under this key, and shares this one.
        this.advance(base, generation);
        shared.keys.add(key);
        this.inflight.set(key, shared);
        shared.status.message = 'asking Countersign';
      }
    } catch (err) {
      return { result: this.failClosed(err) };
    }
    if (decision.status === 'pending_approval') return { result: stillPendingResult(decision, s.max_hold_sec) };
    if (decision.decision === 'DENY' || decision.decision === 'REQUIRE_APPROVAL') return { result: deniedResult(decision) };

    const declared = new Set(Object.keys((input.upstream.tools.find((t) => t.name === input.tool)?.inputSchema.properties as Record<string, unknown> | undefined) ?? {}));
    const argCheck = checkArgumentConstraints(decision.constraints, input.args, declared);
    if (!argCheck.ok) {
      this.report(decision, { status: 'failed', output: { not_forwarded: argCheck.violations } });
      return { result: constraintRefusal(decision, argCheck.violations) };
    }
    // Nobody waits any more (the client went away while the call was held): do not run it for nobody. The
    // decision stays unused, so the client's retry finds it and runs it then.
    if (shared.waiters === 0) return { error: new McpError(ErrorCode.ConnectionClosed, 'abandoned before forwarding') };

    this.advance(base, generation + 1);
    shared.status.message = `running ${input.upstream.name}/${input.tool} (decision ${decision.decision_id})`;
    const maxRuntime = decision.constraints.max_runtime_sec;
    const meta = {
      ...(input.meta ?? {}),
      [DECISION_META]: { decision_id: decision.decision_id, decision: decision.decision, constraints: decision.constraints, ...(decision.decision === 'ALLOW_WITH_CONSTRAINTS' ? { enforced_by_gateway: argCheck.enforced, to_enforce: argCheck.passed } : {}) },
    };
    let result: CallToolResult;
    try {
      result = await input.upstream.client.request(
        { method: 'tools/call', params: { name: input.tool, arguments: input.args, _meta: meta } },
        CallToolResultSchema,
        { timeout: (maxRuntime ?? s.upstream_timeout_sec) * 1000, ...(maxRuntime === undefined ? { resetTimeoutOnProgress: true } : {}) },
      );
    } catch (err) {
      if (err instanceof McpError && err.code === (ErrorCode.RequestTimeout as number) && maxRuntime !== undefined) {
        this.report(decision, { status: 'failed', output: { error: `ran longer than max_runtime_sec=${maxRuntime}` } });
        return { result: runtimeExceededResult(decision, maxRuntime) };
      }
      this.report(decision, { status: 'failed', output: { error: err instanceof Error ? err.message.slice(0, 500) : 'error' } });
      return { error: err instanceof McpError ? err : new McpError(ErrorCode.InternalError, `upstream ${input.upstream.name} failed: ${err instanceof Error ? err.message : String(err)}`) };
    }
    const outcome = { status: result.isError ? ('failed' as const) : ('succeeded' as const), output: boundedOutput(result, s.max_outcome_bytes) };
    if (!this.deps.checkOutput(input.upstream.name, input.tool)) {
      this.report(decision, outcome);
      return { result };
    }
    try {
      const checkedOutcome = checked(OutcomeAnswer, await this.deps.api.request<unknown>('POST', `/v1/decisions/${decision.decision_id}/outcome`, outcome), 'the outcome report');
      if (checkedOutcome.violations > 0) return { result: withheldResult(decision, checkedOutcome.violations_found) };
    } catch (err) {
      // The tool has run; its result is not hidden because the report failed, but the failure is logged.
      this.deps.log(`outcome of ${decision.decision_id} not reported: ${err instanceof Error ? err.message : String(err)}`);
    }
    return { result };
  }

  /**
   * POST /v1/decisions. A 500 is retried too (the transport retries 429 and 502-504): the idempotency key
   * makes a repeat name the same run, never a second one.
   */
  private async ask(request: object): Promise<{ decision: DecisionResult; replayed: boolean }> {
    for (let attempt = 1; ; attempt++) {
      try {
        let replayed = false;
        const onHeaders = (h: Headers) => { replayed = h.get(REPLAYED_HEADER) === 'true'; };
        const decision = checked(DecisionAnswer, await this.deps.api.request<unknown>('POST', '/v1/decisions', request, { onHeaders }), 'POST /v1/decisions');
        return { decision, replayed };
      } catch (err) {
        if (!(err instanceof CountersignApiError && err.status === 500) || attempt >= 3) throw err;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  }

  /**
   * Whether a decision was already used: the gateway reports an outcome after every forward (succeeded or
   * failed), so a run with an OutcomeReported event has executed. Asked only of replayed answers, never on the
   * steady path. A crash between a forward and its report leaves the run looking unspent: at least once there.
   */
  private async spent(decisionId: string): Promise<boolean> {
    const timeline = checked(Timeline, await this.deps.api.request<unknown>('GET', `/v1/decisions/${decisionId}/events`), 'GET /v1/decisions/{id}/events');
    return timeline.items.some((e) => e.type === 'OutcomeReported');
  }

  /** The next identical call asks under `n` at least (never goes back to a generation already used). */
  private advance(base: string, n: number): void {
    const known = this.generations.get(base)?.n ?? 0;
    if (n > known) this.generations.set(base, { n, expiresAt: (this.deps.now?.() ?? Date.now()) + 2 * this.deps.settings.idempotency_window_sec * 1000 });
  }

  /** Long-polls until the decision is final, the maximum hold passes, or nobody waits any more. */
  private async hold(first: DecisionResult, shared: Shared): Promise<DecisionResult> {
    const s = this.deps.settings;
    const deadline = Date.now() + s.max_hold_sec * 1000;
    shared.status.message = `waiting for approval: ${first.reason} (decision ${first.decision_id}, rule ${first.matched_rule ?? '-'})`;
    let current = first;
    while (current.status === 'pending_approval' && !shared.stop.signal.aborted) {
      const left = Math.floor((deadline - Date.now()) / 1000);
      if (left <= 0) break;
      try {
        current = checked(DecisionAnswer, await this.deps.api.request<unknown>('GET', `/v1/decisions/${current.decision_id}`, undefined, {
          query: { wait: Math.min(POLL_SECONDS, left) }, extraTimeoutMs: Math.min(POLL_SECONDS, left) * 1000, signal: shared.stop.signal,
        }), 'GET /v1/decisions/{id}');
      } catch (err) {
        if (shared.stop.signal.aborted) break;
        throw err;
      }
    }
    return current;
  }

  private report(decision: DecisionResult, outcome: { status: 'succeeded' | 'failed'; output: unknown }): void {
    const p = this.deps.api.request('POST', `/v1/decisions/${decision.decision_id}/outcome`, outcome)
      .catch((err: unknown) => this.deps.log(`outcome of ${decision.decision_id} not reported: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => this.background.delete(p));
    this.background.add(p);
  }

  private failClosed(err: unknown): CallToolResult {
    if (err instanceof CountersignApiError) {
      const detail = `${err.status} ${err.code}: ${err.problem.detail ?? err.problem.title ?? ''}${(err.problem.errors ?? []).map((e) => `; ${e.path}: ${e.message}`).join('')}`;
      return err.status >= 500 || err.status === 429 ? unavailableResult(detail) : refusedRequestResult(detail);
    }
    if (err instanceof CountersignNetworkError) return unavailableResult(err.message);
    this.deps.log(`decision failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    return unavailableResult(err instanceof Error ? err.message : String(err));
  }

  private prune(now: number): void {
    if (this.generations.size < 10_000) return;
    for (const [k, v] of this.generations) if (v.expiresAt <= now) this.generations.delete(k);
  }
}
