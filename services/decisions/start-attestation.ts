import type { DocumentSignature, PublicKeySet } from '../../schemas/receipt.ts';
import { DecisionRequestedData, PolicyEvaluatedData, type EventData } from '../../schemas/events.ts';
import { sha256Digest } from '../receipts/canonical.ts';
import type { Keyring } from '../receipts/keyring.ts';
import { signDocument } from '../receipts/sign.ts';
import { verifyDocument, type VerifyResult } from '../receipts/verify.ts';
import { workflowIdFor } from './ids.ts';
import type { DecisionWorkflowInput } from '../../workflows/decision-workflow.ts';

/**
 * The start of a decision run, signed by the API with the receipt keyring (Ed25519), so that a workflow started
 * by anyone else who can reach Temporal writes nothing and signs nothing.
 *
 * Ed25519 rather than an HMAC with the attestation secret: the signature is recorded in the run's
 * DecisionRequested event, and an auditor checks it from the log and the public keys alone (GET /v1/keys), as
 * receipts and policy activations are checked; no secret ever leaves the API and the worker.
 *
 * The signed document covers every value of the workflow's input: what the run's first two events record
 * (tenant, decision id, requester, request digest, arguments digest, idempotency key, the whole evaluation
 * with its decision, facts and snapshot hash, the policies, the default decision) by digest, and the rest
 * (workflow id, counter increments, windows, callback URL) as recorded in DecisionRequested's `start`.
 */

export const RUN_START_DOCUMENT_TYPE = 'countersign.run-start/v1';

/** What the workflow input carries: the API's signature and when it was made. */
export type StartAttestation = { issued_at: string; signature: DocumentSignature };

export type RunStart = NonNullable<EventData<'DecisionRequested'>['start']>;
type Requested = EventData<'DecisionRequested'>;
type Evaluated = EventData<'PolicyEvaluated'>;

/** The signed bytes' document, a pure function of the run's first two events. */
export function runStartDocument(requested: Requested, evaluated: Evaluated, start: Omit<RunStart, 'signature'>): Record<string, unknown> {
  return {
    type: RUN_START_DOCUMENT_TYPE,
    workflow_id: start.workflow_id,
    tenant_id: requested.tenant_id,
    decision_id: requested.decision_id,
    requested_by: requested.requested_by,
    // Only when a principal acted for another agent: starts without it sign the same document as before.
    ...(requested.acting_principal !== undefined ? { acting_principal: requested.acting_principal } : {}),
    // Only when the decision was asked in a trace: starts without one sign the same document as before.
    ...(requested.trace !== undefined ? { trace: requested.trace } : {}),
    request_digest: requested.request_digest,
    args_digest: requested.args_digest,
    idempotency_key: requested.idempotency_key,
    evaluation_digest: sha256Digest(evaluated.evaluation),
    decision: evaluated.evaluation.decision,
    snapshot_hash: evaluated.evaluation.snapshot_hash,
    policies: evaluated.policies,
    default_decision: evaluated.default_decision ?? null,
    counter_increments: start.counter_increments,
    windows: start.windows,
    callback_url: start.callback_url,
    // Only for a run that asks the evaluator: every other start signs the same document as before.
    ...(start.judge ? { judge: true } : {}),
    issued_at: start.issued_at,
  };
}

/** The API's side: signs the start of a run about to be handed to Temporal. */
export function signRunStart(keyring: Keyring, requested: Requested, evaluated: Evaluated, start: Omit<RunStart, 'signature' | 'issued_at'>, now: Date): StartAttestation {
  const issued_at = now.toISOString();
  return { issued_at, signature: signDocument(runStartDocument(requested, evaluated, { ...start, issued_at }), keyring) };
}

export type RunStartCheck = { ok: true } | { ok: false; reason: string; unknownKey?: boolean };

/**
 * Everything about a run's start but the Ed25519 check: both events well-formed (counter increments never
 * negative), the workflow id the decision's own (and, when given, the one the events come from), the digests
 * they record matching what they carry. Answers the signed document and its signature, or the problem.
 */
export function prepareRunStart(requestedRaw: unknown, evaluatedRaw: unknown, workflowId?: string, opts: { validated?: boolean } = {}): { ok: true; doc: Record<string, unknown>; signature: unknown } | { ok: false; reason: string } {
  // `validated`: the caller has checked these very objects against the same schemas (the auditor's replay
  // validates every event's data as stored); a second parse would only cost time.
  if (!opts.validated) {
    const req = DecisionRequestedData.safeParse(requestedRaw);
    if (!req.success) return { ok: false, reason: `DecisionRequested is malformed at ${req.error.issues[0]?.path.join('.')}: ${req.error.issues[0]?.message}` };
    const ev = PolicyEvaluatedData.safeParse(evaluatedRaw);
    if (!ev.success) return { ok: false, reason: `PolicyEvaluated is malformed at ${ev.error.issues[0]?.path.join('.')}: ${ev.error.issues[0]?.message}` };
  }
  // Digests and the signature are over the events as recorded, not as zod re-shapes them (defaults).
  const r = requestedRaw as Requested;
  const evaluated = evaluatedRaw as Evaluated;
  const start = r.start;
  if (!start) return { ok: false, reason: 'the run start carries no signature of the API (started outside Countersign)' };
  if (start.workflow_id !== workflowIdFor(r.tenant_id, r.decision_id)) return { ok: false, reason: `the run start names workflow ${start.workflow_id}, not the decision's own` };
  if (workflowId !== undefined && start.workflow_id !== workflowId) return { ok: false, reason: `the run start was signed for workflow ${start.workflow_id}, not ${workflowId}` };
  if (sha256Digest(r.request) !== r.request_digest) return { ok: false, reason: 'the request does not match its recorded digest' };
  const args = r.request.action.args;
  if ((args ? sha256Digest(args) : null) !== r.args_digest) return { ok: false, reason: 'the arguments do not match their recorded digest' };
  if ((r.request.callback_url ?? null) !== start.callback_url) return { ok: false, reason: 'the callback URL differs from the request\'s' };
  const { signature, ...signed } = start;
  return { ok: true, doc: runStartDocument(r, evaluated, signed), signature };
}

/** What an unverified start signature means, in the reason a refusal or a divergence gives. */
export const startSignatureProblem = (v: Extract<VerifyResult, { ok: false }>): string => `the run start signature does not hold: ${v.reason}: ${v.detail}`;

/**
 * Checks a run's first two events (as the worker is about to append them, or as the auditor reads them back):
 * prepareRunStart, then the API's signature under the deployment's public keys. With `keys` null (an auditor
 * without keys) everything but the signature. `workflowId`: the workflow the events come from, when known.
 */
export function checkRunStart(requestedRaw: unknown, evaluatedRaw: unknown, keys: PublicKeySet | null, workflowId?: string): RunStartCheck {
  const p = prepareRunStart(requestedRaw, evaluatedRaw, workflowId);
  if (!p.ok) return p;
  if (!keys) return { ok: true };
  const v = verifyDocument(p.doc, p.signature, keys);
  if (!v.ok) return { ok: false, reason: startSignatureProblem(v), ...(v.reason === 'unknown_key' ? { unknownKey: true } : {}) };
  return { ok: true };
}

/**
 * The run's first two events as the decision workflow records them from its input (workflows/decision-workflow.ts),
 * for a reader that holds only the input (the API, facing a run it did not start under an id it derives).
 */
export function startEventsOf(input: DecisionWorkflowInput, workflowId: string): { requested: Requested; evaluated: Evaluated } {
  const att = input.attestation;
  return {
    requested: {
      decision_id: input.decisionId, tenant_id: input.tenantId, request: input.request, request_digest: input.requestDigest, args_digest: input.argsDigest,
      idempotency_key: input.idempotencyKey, requested_by: input.requestedBy,
      ...(input.actingPrincipal ? { acting_principal: input.actingPrincipal } : {}),
      ...(input.trace ? { trace: input.trace } : {}),
      ...(att ? { start: { workflow_id: workflowId, counter_increments: input.counterIncrements ?? [], windows: input.windows, callback_url: input.callbackUrl ?? null, ...(input.judge ? { judge: true as const } : {}), issued_at: att.issued_at, signature: att.signature } } : {}),
    },
    evaluated: { evaluation: input.evaluation, policies: input.policies, default_decision: input.defaultDecision },
  };
}
