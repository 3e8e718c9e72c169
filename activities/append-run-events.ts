import { ApplicationFailure } from '@temporalio/common';
import type { PoolClient } from 'pg';
import type { Db } from '../services/events/db.ts';
import type { PublicKeySet } from '../schemas/receipt.ts';
import { checkRunStart } from '../services/decisions/start-attestation.ts';
import type { SealedRow } from '../services/events/append-to-stream.ts';
import { appendReconciled } from '../services/events/append-reconciled.ts';
import { runStreamId } from '../services/decisions/ids.ts';
import type { Keyring } from '../services/receipts/keyring.ts';
import { receiptEvent } from './issue-receipt.ts';
import type { AdoptedEvent, AppendRunEventsInput, AppendRunEventsResult, AuthorizeInput, AuthorizeResult } from './types.ts';

const sameSet = (a: readonly string[], b: readonly string[]) => {
  const [x, y] = [[...a].sort(), [...b].sort()];
  return x.length === y.length && x.every((v, i) => v === y[i]);
};

/** What the worker does about a run start Countersign did not sign: the keys to check with, and the trace it leaves. */
export type StartGuard = {
  /** The deployment's public keys; `fresh` re-reads them (a key id the worker has not seen: a rotation). */
  keys: (fresh: boolean) => Promise<PublicKeySet>;
  /** Called once per refused start (a metric and a warning the operator sees); never throws. */
  refused: (r: { workflowId: string; tenantId: string; decisionId: string; reason: string }) => void;
};

export const RUN_START_REFUSED = 'RunStartRefused';

/** A decision made final by an append (told once, after the commit; never for a retry that wrote nothing). */
export type Finalized = { tenantId: string; decisionId: string; decision: string; via: string; at: Date; requestedAt?: string };

/**
 * A run's first append is its start: the API's signature over the whole start (recorded in DecisionRequested)
 * must hold before anything is written, so a workflow started straight through Temporal writes no event, no
 * counter, no idempotency key and no receipt. The refusal is non-retryable: the run fails.
 */
async function checkStart(input: AppendRunEventsInput, guard: StartGuard): Promise<void> {
  const [requested, evaluated] = input.events;
  let reason: string | null = null;
  if (requested?.type !== 'DecisionRequested' || evaluated?.type !== 'PolicyEvaluated') reason = 'a run\'s first events are its request and its evaluation';
  else if (requested.data.decision_id !== input.decisionId || requested.data.tenant_id !== input.tenantId) reason = 'the request names another decision or tenant than the run writes to';
  else {
    let check = checkRunStart(requested.data, evaluated.data, await guard.keys(false), input.workflowId);
    if (!check.ok && check.unknownKey) check = checkRunStart(requested.data, evaluated.data, await guard.keys(true), input.workflowId);
    if (!check.ok) reason = check.reason;
  }
  if (reason === null) return;
  guard.refused({ workflowId: input.workflowId, tenantId: input.tenantId, decisionId: input.decisionId, reason });
  throw ApplicationFailure.create({ type: RUN_START_REFUSED, message: `run start refused: ${reason}`, nonRetryable: true });
}

/**
 * Appends a run's events. Idempotent: the workflow passes the expected version and derived event ids, so an
 * activity retried after its commit (worker crash, lost response) finds its events recorded and writes
 * nothing new. A stream that holds other events at those versions (an earlier attempt of the workflow task,
 * lost with its worker, wrote them) is reported back for the workflow to adopt, never overwritten or mistaken
 * for this batch.
 */
export function makeAppendRunEvents(
  db: Db, guard: StartGuard, crashAt?: string, keyring?: () => Promise<Keyring>, onFinalized: (f: Finalized) => void = () => {},
  authorize?: (input: AuthorizeInput) => Promise<AuthorizeResult>,
) {
  return async function appendRunEvents(input: AppendRunEventsInput): Promise<AppendRunEventsResult> {
    if (input.expectedVersion === 0) await checkStart(input, guard);
    if (input.identities?.length) {
      // Answers the workflow decided with the identity the API attested: each is authorized here as the
      // authorize activity would, before anything is written, and must be that identity now.
      if (!authorize) throw new Error('appendRunEvents: identities to confirm, and no authorize check');
      const found = await Promise.all(input.identities.map(async (id) => {
        const who = await authorize(id.message);
        return who.ok && sameSet(who.roles, id.roles) && sameSet(who.groups, id.groups) && !who.delegations?.length ? 'same' as const : who;
      }));
      if (found.some((f) => f !== 'same')) return { streamVersion: input.expectedVersion, duplicate: true, identities: found };
    }
    if (input.counters?.entries.some((e) => !(Number.isFinite(e.amount) && e.amount >= 0))) {
      throw ApplicationFailure.create({ type: RUN_START_REFUSED, message: 'a counter increment is never negative', nonRetryable: true });
    }
    // A run's first events and their receipt go in one statement: the receipt is built from the rows as they
    // will be stored and signed before they are sent.
    let seal;
    if (input.withReceipt) {
      if (input.expectedVersion !== 0 || !keyring) throw new Error('appendRunEvents: withReceipt is for a run\'s first events, with the keyring');
      const ring = await keyring();
      const head = { decisionId: input.decisionId, tenantId: input.tenantId, headVersion: input.events.length, workflowId: input.workflowId };
      seal = (rows: readonly SealedRow[]) => receiptEvent(head, rows, ring);
    }
    const res = await appendReconciled(db, {
      ...(seal ? { seal } : {}),
      streamId: runStreamId(input.decisionId),
      tenantId: input.tenantId,
      expectedVersion: input.expectedVersion,
      // Metadata (issue 4): correlation = the decision the run belongs to; causation = the workflow that wrote it.
      events: input.events.map((e) => ({ ...e, metadata: { causation_id: input.workflowId, correlation_id: input.decisionId, ...e.metadata, workflow_id: input.workflowId } })),
      recordedAt: new Date(),
      // Only when there is more to write: an append with nothing beside it is one statement in one round trip
      // (its own transaction), where a callback makes it BEGIN, the append, the callback and COMMIT.
      ...(input.idempotency || input.counters?.entries.length ? { alsoInTransaction: async (client: PoolClient) => {
        if (input.idempotency) {
          await client.query(
            `INSERT INTO idempotency_keys (tenant_id, idempotency_key, decision_id, request_digest) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, decision_id) DO NOTHING`,
            [input.tenantId, input.idempotency.key, input.decisionId, input.idempotency.requestDigest],
          );
        }
        if (input.counters?.entries.length) {
          await client.query(
            `INSERT INTO counter_entries (tenant_id, key, decision_id, at, amount)
             SELECT $1, k, $2, $3::timestamptz, a FROM unnest($4::text[], $5::float8[]) AS t(k, a)
             ON CONFLICT (decision_id, key) DO NOTHING`,
            [input.tenantId, input.decisionId, input.counters.at, input.counters.entries.map((e) => e.key), input.counters.entries.map((e) => e.amount)],
          );
        }
      } } : {}),
    });
    if (crashAt === 'after-append-commit') crash();
    if (crashAt === 'after-answer-commit' && res.fresh.some((e) => e.type === 'ApprovalGranted' || e.type === 'ApprovalRejected')) crash();
    if (crashAt === 'after-some-append-commits' && res.fresh.length > 0 && Math.random() < CRASH_RATE) crash();
    const final = res.fresh.find((e) => e.type === 'DecisionFinalized');
    if (final?.type === 'DecisionFinalized') {
      const evaluated = input.events.find((e) => e.type === 'PolicyEvaluated');
      const requestedAt = evaluated?.type === 'PolicyEvaluated' ? evaluated.data.evaluation.now : undefined;
      try {
        onFinalized({ tenantId: input.tenantId, decisionId: input.decisionId, decision: final.data.decision, via: final.data.via, at: new Date(), ...(requestedAt ? { requestedAt } : {}) });
      } catch { /* a metric never changes the append */ }
    }
    const settled = res.written === input.events.length && res.adopted.length === 0 && res.sealed === !!seal;
    if (settled) return { streamVersion: res.streamVersion, duplicate: res.fresh.length === 0 };
    return { streamVersion: res.streamVersion, duplicate: res.fresh.length === 0, written: res.written, adopted: res.adopted as AdoptedEvent[], sealed: res.sealed };
  };
}

/** With after-some-append-commits: the share of appends that wrote something after which the worker dies. */
const CRASH_RATE = 0.3;

/**
 * Test-only crash point: with COUNTERSIGN_CRASH_AT=after-append-commit (after-answer-commit: only after an
 * append that records an answer; after-some-append-commits: after a random share of appends) the worker process dies here, after the commit and before the activity
 * returns, to prove that the retry writes nothing new and that the run's next attempt adopts what stands.
 */
function crash(): void {
  process.kill(process.pid, 'SIGKILL');
}
