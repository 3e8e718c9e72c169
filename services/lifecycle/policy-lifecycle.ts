import type { ApprovalChannel } from '../../schemas/approval-channel.ts';
import { randomUUID } from 'node:crypto';
import type { NewEvent } from '../../schemas/events.ts';
import type { DecisionRequest, Evaluation } from '../../schemas/decision.ts';
import { CountersignError } from '../errors.ts';
import { appendToStream } from '../events/append-to-stream.ts';
import { withTenant, type Db } from '../events/db.ts';
import { compileDocument, evaluate, interpretations, withDrafts, type Snapshot } from '../policy/index.ts';
import type { Keyring } from '../receipts/keyring.ts';
import { canonicalJson, sha256Digest } from '../receipts/canonical.ts';
import { signedActivation } from './activate-policy.ts';
import { isPlatformScope, policyStreamId, policyStreamPrefix } from '../events/stream-ids.ts';
import { compilePolicyVersion } from './policy-version.ts';
import { agentStreamId, foldPolicy, openReview, type PolicyEvent, type PolicyState } from './policy-store.ts';
import { settingSeconds } from '../../schemas/duration.ts';
import { RecordedTenantSettings } from '../../schemas/identity.ts';
import type { z } from 'zod';
import { restrictiveness } from '../../schemas/decision-kind.ts';
import type { PublicKeySet } from '../../schemas/receipt.ts';
import { verifyExport } from './policy-export.ts';
import { readPlatformSettings } from './platform-settings.ts';
import { withSystem } from '../events/db.ts';

/**
 * The policy lifecycle (issue 7): Draft -> Validated -> Active (immutable, signed) -> Deprecated, folded
 * from the events of `policy/<tenant>/<policy id>`. Every transition is one append with the stream version
 * it was decided on, so two racing transitions cannot both land; every refusal writes nothing.
 */

/**
 * Who changes a policy, and whose policy it is: `tenantId` is the owner, a tenant or PLATFORM_SCOPE (a platform
 * admin acting on platform policies, streams `platform/policy/<id>`; services/api/routes/platform-policies.ts).
 */
export type Actor = { tenantId: string; principalId: string };

const POLICY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const scopeOf = (doc: Record<string, unknown>) => (doc['scope'] as Record<string, unknown> | undefined) ?? { level: 'tenant' };

/** Checks a document compiles; answers its policy id and the interpretations of its natural-language rules. */
export function checkDocument(doc: unknown, tenantId: string): { policyId: string; document: Record<string, unknown>; interpreted: unknown[] } {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new CountersignError('validation_failed', 'a policy document is an object', { errors: [{ path: '', message: 'expected an object' }] });
  const c = compileDocument(doc, 1);
  if (!c.ok) throw new CountersignError('validation_failed', 'policy does not compile', { errors: c.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })) });
  if (isPlatformScope(tenantId)) {
    if (c.policy.level !== 'platform') {
      throw new CountersignError('validation_failed', 'a platform policy says scope: { level: platform }', {
        errors: [{ path: 'scope.level', message: `a platform policy applies to every tenant: scope: { level: platform }, not ${c.policy.level}` }],
      });
    }
  } else if (c.policy.level === 'platform') {
    // A tenant's policy applies to that tenant only: saying platform would not make it one, so it is refused.
    throw new CountersignError('validation_failed', 'a tenant cannot author a platform policy', {
      errors: [{ path: 'scope.level', message: 'platform policies apply to every tenant and are authored by platform admins; a tenant policy is scope: { level: tenant } (or agent)' }],
    });
  }
  const policyId = c.policy.policy_id;
  if (!POLICY_ID.test(policyId)) throw new CountersignError('validation_failed', 'metadata.id must be letters, digits, dots, dashes or underscores', { errors: [{ path: 'metadata.id', message: 'invalid policy id' }] });
  return { policyId, document: doc as Record<string, unknown>, interpreted: interpretations(c.policy) };
}

export async function loadPolicy(db: Db, tenantId: string, policyId: string): Promise<PolicyState | null> {
  const res = await withTenant(db, tenantId, (c) => c.query<PolicyEvent>(
    `SELECT type, data, to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS recorded_at, stream_version
       FROM events WHERE stream_id = $1 AND tenant_id = $2 ORDER BY stream_version`,
    [policyStreamId(tenantId, policyId), tenantId],
  ));
  return foldPolicy(policyId, res.rows);
}

export async function listPolicies(db: Db, tenantId: string): Promise<PolicyState[]> {
  const prefix = policyStreamPrefix(tenantId);
  const res = await withTenant(db, tenantId, (c) => c.query<PolicyEvent & { stream_id: string }>(
    `SELECT stream_id, type, data, to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS recorded_at, stream_version
       FROM events WHERE tenant_id = $1 AND left(stream_id, length($2)) = $2 ORDER BY stream_id, stream_version`,
    [tenantId, prefix],
  ));
  const byStream = new Map<string, PolicyEvent[]>();
  for (const r of res.rows) (byStream.get(r.stream_id) ?? byStream.set(r.stream_id, []).get(r.stream_id)!).push(r);
  const out: PolicyState[] = [];
  for (const [stream, events] of byStream) {
    const s = foldPolicy(stream.slice(prefix.length), events);
    if (s && !s.deleted) out.push(s);
  }
  return out.sort((a, b) => a.policy_id.localeCompare(b.policy_id));
}

export async function mustLoad(db: Db, tenantId: string, policyId: string): Promise<PolicyState> {
  const s = await loadPolicy(db, tenantId, policyId);
  if (!s || s.deleted) throw new CountersignError('not_found', `policy ${policyId} not found`);
  return s;
}

export async function append(db: Db, tenantId: string, policyId: string, expected: number, events: NewEvent[], now: Date): Promise<void> {
  await appendToStream(db, { streamId: policyStreamId(tenantId, policyId), tenantId, expectedVersion: expected, events, recordedAt: now });
}

export const eid = (tenantId: string, policyId: string, type: string) => `${policyStreamId(tenantId, policyId)}/${type}/${randomUUID()}`;

function checkScope(s: PolicyState, doc: Record<string, unknown>): void {
  if (s.scope && canonicalJson(s.scope) !== canonicalJson(scopeOf(doc))) {
    throw new CountersignError('conflict', `the scope of policy ${s.policy_id} is fixed after its first activation`, { extra: { scope: s.scope } });
  }
}

export async function createDraft(db: Db, a: Actor, doc: unknown, now = new Date()): Promise<{ state: PolicyState; interpreted: unknown[] }> {
  const checked = checkDocument(doc, a.tenantId);
  const s = await loadPolicy(db, a.tenantId, checked.policyId);
  if (s && !s.deleted) {
    if (s.draft) throw new CountersignError('conflict', `policy ${checked.policyId} already has a draft: replace it with PUT /v1/policies/${checked.policyId}`);
    throw new CountersignError('conflict', `policy ${checked.policyId} exists: clone it to make the next version's draft`);
  }
  await append(db, a.tenantId, checked.policyId, s?.stream_version ?? 0, [{ type: 'PolicyDrafted', eventId: eid(a.tenantId, checked.policyId, 'drafted'), data: { policy_id: checked.policyId, version: 1, document: checked.document, drafted_by: a.principalId } }], now);
  return { state: (await loadPolicy(db, a.tenantId, checked.policyId))!, interpreted: checked.interpreted };
}

export async function replaceDraft(db: Db, a: Actor, policyId: string, doc: unknown, now = new Date()): Promise<{ state: PolicyState; interpreted: unknown[] }> {
  const checked = checkDocument(doc, a.tenantId);
  if (checked.policyId !== policyId) throw new CountersignError('validation_failed', `metadata.id is ${checked.policyId}, not ${policyId}`, { errors: [{ path: 'metadata.id', message: `must be ${policyId}` }] });
  const s = await mustLoad(db, a.tenantId, policyId);
  if (!s.draft) throw new CountersignError('conflict', `policy ${policyId} has no draft; an active version is immutable: clone it`);
  notUnderReview(s, 'edited');
  checkScope(s, checked.document);
  await append(db, a.tenantId, policyId, s.stream_version, [{ type: 'PolicyEdited', eventId: eid(a.tenantId, policyId, 'edited'), data: { policy_id: policyId, version: s.draft.version, document: checked.document, edited_by: a.principalId } }], now);
  return { state: (await loadPolicy(db, a.tenantId, policyId))!, interpreted: checked.interpreted };
}

export async function deleteDraft(db: Db, a: Actor, policyId: string, now = new Date()): Promise<PolicyState> {
  const s = await mustLoad(db, a.tenantId, policyId);
  if (!s.draft) throw new CountersignError('conflict', `policy ${policyId} has no draft; only drafts can be deleted (deprecate an active policy)`);
  notUnderReview(s, 'deleted');
  await append(db, a.tenantId, policyId, s.stream_version, [{ type: 'PolicyDeleted', eventId: eid(a.tenantId, policyId, 'deleted'), data: { policy_id: policyId, version: s.draft.version, deleted_by: a.principalId } }], now);
  return (await loadPolicy(db, a.tenantId, policyId))!;
}

export type ActivationAnswer = { id: string; version: number; hash: string; signature: string; signing_key_id: string; status: 'active'; unchanged: boolean };

/** The tenant's policy settings (issue 7), as the tenants row has them. */
export type PolicySettings = { fourEyes: boolean; requireValidation: boolean; refuseLoosening: boolean; reviewTimeoutSec: number };

export const DEFAULT_REVIEW_TIMEOUT_SEC = 72 * 3600;

/** The settings that gate an owner's policies: a tenant's (its tenants row), or the platform's own (PLATFORM_SCOPE). */
export async function policySettings(db: Db, tenantId: string): Promise<PolicySettings> {
  let t: z.infer<typeof RecordedTenantSettings>;
  if (isPlatformScope(tenantId)) t = (await readPlatformSettings(db)).settings;
  else {
    const res = await withTenant(db, tenantId, (c) => c.query<{ settings: unknown }>('SELECT settings FROM tenants WHERE id = $1', [tenantId]));
    const parsed = RecordedTenantSettings.safeParse(res.rows[0]?.settings ?? {});
    t = parsed.success ? parsed.data : {};
  }
  return {
    fourEyes: t.policy_four_eyes === true,
    requireValidation: t.policy_require_validation === true || t.policy_refuse_loosening === true,
    refuseLoosening: t.policy_refuse_loosening === true,
    // A value recorded before the settings' bounds (1s to 30d) and outside them falls back to the default.
    reviewTimeoutSec: settingSeconds(t.policy_activation_timeout) ?? DEFAULT_REVIEW_TIMEOUT_SEC,
  };
}

export function notUnderReview(s: PolicyState, what: string): void {
  const r = openReview(s);
  if (r?.change) {
    throw new CountersignError('conflict', `policy ${s.policy_id} has a review waiting for a second admin (${r.change.kind}, review ${r.review_id}, asked by ${r.requested_by}); it cannot be ${what} until the review ends`, { extra: { review_id: r.review_id } });
  }
  if (r) {
    throw new CountersignError('conflict', `policy ${s.policy_id}'s draft v${r.version} is waiting for a second admin to approve its activation (review ${r.review_id}, asked by ${r.requested_by}); it cannot be ${what} until the review ends`, { extra: { review_id: r.review_id } });
  }
}

export type ActivationOptions = { expected_loosening?: string[] | undefined };

/** What an activation may go ahead with: the draft, its document hash, and whether it needs a second admin. */
export type ActivationPlan = { state: PolicyState; documentHash: `sha256:${string}`; settings: PolicySettings; expectedLoosening: string[] };

/**
 * Every check an activation must pass before anything is written, in the order a caller fixes them: a draft
 * that exists, compiles and keeps its scope; no review already waiting; when the tenant requires it, a
 * validation of exactly this document; when the tenant refuses loosening, no looser decision by a rule the
 * caller did not declare in `expected_loosening`. Refusals are 409 (or 400 for a draft that does not compile).
 */
export async function planActivation(db: Db, a: Actor, policyId: string, opts: ActivationOptions = {}): Promise<ActivationPlan | { unchanged: ActivationAnswer }> {
  const s = await mustLoad(db, a.tenantId, policyId);
  notUnderReview(s, 'activated again');
  if (!s.draft) {
    const active = s.versions.find((v) => v.version === s.active_version);
    if (active) return { unchanged: { id: policyId, version: active.version, hash: active.hash, signature: active.signature ?? '', signing_key_id: active.signing_key_id ?? '', status: 'active', unchanged: true } };
    throw new CountersignError('conflict', `policy ${policyId} has no draft to activate`);
  }
  checkScope(s, s.draft.document);
  const compiled = compilePolicyVersion(s.draft.document, s.draft.version);
  if (!compiled.ok) throw new CountersignError('validation_failed', `the draft of policy ${policyId} does not compile`, { errors: compiled.errors });
  const settings = await policySettings(db, a.tenantId);
  const documentHash = sha256Digest(s.draft.document);
  const validation = s.draft.validation as (ValidationReport & { document_hash?: string }) | undefined;
  const validated = validation !== undefined && validation.document_hash === documentHash;
  if (settings.requireValidation && !validated) {
    throw new CountersignError('conflict', `policy ${policyId}'s draft v${s.draft.version} has not been validated, and this tenant requires validation before activation: POST /v1/policies/${policyId}/validate first`, { extra: { reason: 'not_validated' } });
  }
  const expected = [...new Set(opts.expected_loosening ?? [])].sort();
  if (settings.refuseLoosening && validated) {
    const unexpected = Object.entries(validation.by_rule ?? {}).filter(([rule, b]) => b.looser > 0 && !expected.includes(rule)).map(([rule, b]) => ({ rule, looser: b.looser }));
    if (unexpected.length > 0) {
      throw new CountersignError('conflict', `the validation of policy ${policyId}'s draft v${s.draft.version} shows looser decisions by ${unexpected.map((u) => `${u.rule} (${u.looser})`).join(', ')}, and this tenant refuses unexpected loosening: name the rules in expected_loosening if it is intended`, { extra: { reason: 'unexpected_loosening', looser: unexpected } });
    }
  }
  return { state: s, documentHash, settings, expectedLoosening: expected };
}


/** Activates the draft at once (tenants without four-eyes). Four-eyes tenants go through services/lifecycle/activation-reviews.ts. */
export async function activateDraft(db: Db, keyring: Keyring, a: Actor, policyId: string, opts: ActivationOptions = {}, now = new Date()): Promise<ActivationAnswer> {
  const plan = await planActivation(db, a, policyId, opts);
  if ('unchanged' in plan) return plan.unchanged;
  if (plan.settings.fourEyes) throw new CountersignError('conflict', `this tenant requires a second admin to approve activations: policy ${policyId}'s activation must go through a review`);
  const s = plan.state;
  const data = signedActivation(keyring, { document: s.draft!.document, version: s.draft!.version, actor: a.principalId });
  await append(db, a.tenantId, policyId, s.stream_version, [{ type: 'PolicyActivated', eventId: eid(a.tenantId, policyId, `activated-v${data.version}`), data }], now);
  return { id: policyId, version: data.version, hash: data.hash, signature: data.signature ?? '', signing_key_id: data.signing_key_id ?? '', status: 'active', unchanged: false };
}

/**
 * The end of an approved review (called by the review workflow's activity): appends PolicyActivationApproved
 * and the signed PolicyActivated in one append, with the version the review was read at, so nothing can
 * slip between them. Idempotent: a retry after the commit finds the review approved and answers the same.
 */
export async function completeReviewedActivation(
  db: Db, keyring: Keyring,
  opts: { tenantId: string; policyId: string; reviewId: string; approvedBy: string; comment?: string | undefined; channel?: ApprovalChannel | undefined; now?: Date },
): Promise<{ ok: true; version: number; hash: string } | { ok: false; reason: string }> {
  const s = await loadPolicy(db, opts.tenantId, opts.policyId);
  const r = s?.review;
  if (!s || !r || r.review_id !== opts.reviewId) return { ok: false, reason: 'the review is not in the policy\'s log' };
  if (r.status === 'approved') {
    const v = s.versions.at(-1)!;
    return { ok: true, version: v.version, hash: v.hash };
  }
  if (r.status !== 'open') return { ok: false, reason: `the review is already ${r.status}` };
  if (!s.draft || sha256Digest(s.draft.document) !== r.document_hash) return { ok: false, reason: 'the draft is no longer the document the review is bound to' };
  const now = opts.now ?? new Date();
  const data = { ...signedActivation(keyring, { document: s.draft.document, version: s.draft.version, actor: r.requested_by }), approved_by: opts.approvedBy, review_id: r.review_id };
  const stream = policyStreamId(opts.tenantId, opts.policyId);
  await append(db, opts.tenantId, opts.policyId, s.stream_version, [
    { type: 'PolicyActivationApproved', eventId: `${stream}/review/${r.review_id}/approved`, data: { policy_id: opts.policyId, version: s.draft.version, review_id: r.review_id, by: opts.approvedBy, ...(opts.comment ? { comment: opts.comment } : {}), ...(opts.channel ? { channel: opts.channel } : {}), at: now.toISOString() } },
    { type: 'PolicyActivated', eventId: `${stream}/review/${r.review_id}/activated`, data },
  ], now);
  return { ok: true, version: data.version, hash: data.hash };
}

/** A review that ends without activation (rejected or expired); idempotent like the above. */
export async function closeReview(
  db: Db,
  opts: { tenantId: string; policyId: string; reviewId: string; outcome: 'rejected' | 'expired'; by?: string; comment?: string | undefined; channel?: ApprovalChannel | undefined; now?: Date },
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const s = await loadPolicy(db, opts.tenantId, opts.policyId);
  const r = s?.review;
  if (!s || !r || r.review_id !== opts.reviewId) return { ok: false, reason: 'the review is not in the policy\'s log' };
  if (r.status === opts.outcome) return { ok: true };
  if (r.status !== 'open') return { ok: false, reason: `the review is already ${r.status}` };
  const now = opts.now ?? new Date();
  const stream = policyStreamId(opts.tenantId, opts.policyId);
  const event: NewEvent = opts.outcome === 'rejected'
    ? { type: 'PolicyActivationRejected', eventId: `${stream}/review/${r.review_id}/rejected`, data: { policy_id: opts.policyId, version: r.version, review_id: r.review_id, by: opts.by ?? '', ...(opts.comment ? { comment: opts.comment } : {}), ...(opts.channel ? { channel: opts.channel } : {}), at: now.toISOString() } }
    : { type: 'PolicyActivationExpired', eventId: `${stream}/review/${r.review_id}/expired`, data: { policy_id: opts.policyId, version: r.version, review_id: r.review_id, at: now.toISOString() } };
  await append(db, opts.tenantId, opts.policyId, s.stream_version, [event], now);
  return { ok: true };
}

/** Opens a review (the review workflow's first step): refused when the draft changed since the plan was made. */
export async function openActivationReview(
  db: Db,
  opts: { tenantId: string; policyId: string; reviewId: string; expectedStreamVersion: number; requestedBy: string; documentHash: string; deadline: string; expectedLoosening: string[]; now?: Date },
): Promise<{ ok: true; version: number; authors: string[] } | { ok: false; reason: string }> {
  const s = await loadPolicy(db, opts.tenantId, opts.policyId);
  if (s?.review?.review_id === opts.reviewId) return { ok: true, version: s.review.version, authors: s.review.authors };
  if (!s || !s.draft) return { ok: false, reason: `policy ${opts.policyId} has no draft to activate` };
  if (s.stream_version !== opts.expectedStreamVersion || sha256Digest(s.draft.document) !== opts.documentHash) {
    return { ok: false, reason: `policy ${opts.policyId} changed while its activation was being requested; ask again` };
  }
  if (openReview(s)) return { ok: false, reason: `policy ${opts.policyId} already has an activation review waiting` };
  const authors = [...new Set([...s.draft.authors, opts.requestedBy])];
  const stream = policyStreamId(opts.tenantId, opts.policyId);
  try {
    await append(db, opts.tenantId, opts.policyId, s.stream_version, [{
      type: 'PolicyActivationRequested', eventId: `${stream}/review/${opts.reviewId}/requested`,
      data: { policy_id: opts.policyId, version: s.draft.version, review_id: opts.reviewId, document_hash: opts.documentHash, requested_by: opts.requestedBy, authors, deadline: opts.deadline, ...(opts.expectedLoosening.length ? { expected_loosening: opts.expectedLoosening } : {}) },
    }], opts.now ?? new Date());
  } catch (err) {
    if (err instanceof CountersignError && err.code === 'conflict') return { ok: false, reason: `policy ${opts.policyId} changed while its activation was being requested; ask again` };
    throw err;
  }
  return { ok: true, version: s.draft.version, authors };
}

export async function clonePolicy(db: Db, a: Actor, policyId: string, fromVersion: number | undefined, now = new Date()): Promise<PolicyState> {
  const s = await mustLoad(db, a.tenantId, policyId);
  if (s.draft) throw new CountersignError('conflict', `policy ${policyId} already has a draft (version ${s.draft.version})`);
  const want = fromVersion ?? s.active_version ?? s.versions.at(-1)?.version;
  const source = s.versions.find((v) => v.version === want);
  if (!source) throw new CountersignError('not_found', `policy ${policyId} has no version ${want ?? '(none activated)'}`);
  await append(db, a.tenantId, policyId, s.stream_version, [{ type: 'PolicyDrafted', eventId: eid(a.tenantId, policyId, 'cloned'), data: { policy_id: policyId, version: (s.versions.at(-1)?.version ?? 0) + 1, document: source.document, drafted_by: a.principalId, cloned_from: source.version } }], now);
  return (await loadPolicy(db, a.tenantId, policyId))!;
}

// --- validation: replay the draft against recent runs ---------------------------------------------


export type ValidationReport = {
  runs: number;
  window_days: number;
  changed: number;
  stricter: number;
  looser: number;
  unchanged: number;
  by_rule: Record<string, { stricter: number; looser: number; unchanged: number; changed: number }>;
  examples: Array<{ decision_id: string; before: string; after: string; rule: string | null }>;
};

export async function validateDraft(
  db: Db,
  a: Actor,
  policyId: string,
  activeSnapshot: (agentId: string, tenantId: string) => Promise<{ snapshot: Snapshot; defaultDecision: string }>,
  now = new Date(),
): Promise<ValidationReport & { version: number; document_hash: string }> {
  const s = await mustLoad(db, a.tenantId, policyId);
  if (!s.draft) throw new CountersignError('conflict', `policy ${policyId} has no draft to validate`);
  notUnderReview(s, 'validated again');
  const compiled = compileDocument(s.draft.document, s.draft.version);
  if (!compiled.ok) throw new CountersignError('validation_failed', 'the draft does not compile', { errors: compiled.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })) });
  const since = new Date(now.getTime() - 7 * 24 * 3600 * 1000);
  type Row = { tenant_id: string; decision_id: string; request: DecisionRequest; evaluation: Evaluation };
  const cols = `r.tenant_id, r.data->>'decision_id' AS decision_id, r.data->'request' AS request, p.data->'evaluation' AS evaluation
       FROM events r JOIN events p ON p.stream_id = r.stream_id AND p.type = 'PolicyEvaluated' AND p.tenant_id = r.tenant_id`;
  // A platform policy applies to every tenant: its draft is replayed against every tenant's recent runs.
  const rows = isPlatformScope(a.tenantId)
    ? await withSystem(db, 'platform-admin', (c) => c.query<Row>(
      `SELECT ${cols} WHERE r.type = 'DecisionRequested' AND r.recorded_at >= $1 ORDER BY r.position DESC LIMIT 1000`, [since.toISOString()]))
    : await withTenant(db, a.tenantId, (c) => c.query<Row>(
      `SELECT ${cols} WHERE r.tenant_id = $1 AND r.type = 'DecisionRequested' AND r.recorded_at >= $2 ORDER BY r.position DESC LIMIT 1000`, [a.tenantId, since.toISOString()]));
  const report: ValidationReport = { runs: rows.rows.length, window_days: 7, changed: 0, stricter: 0, looser: 0, unchanged: 0, by_rule: {}, examples: [] };
  const snapshots = new Map<string, Promise<Snapshot>>();
  for (const row of rows.rows) {
    const agentId = row.request.agent.id;
    const key = `${row.tenant_id}\u0000${agentId}`;
    let snap = snapshots.get(key);
    if (!snap) {
      snap = activeSnapshot(agentId, row.tenant_id).then((e) => withDrafts(e.snapshot, [compiled.policy], e.snapshot.default_decision));
      snapshots.set(key, snap);
    }
    const after = evaluate(await snap, row.request, row.evaluation.facts, new Date(row.evaluation.now));
    const before = row.evaluation.decision;
    // Positive when the new decision is more restrictive than the old (0 is DENY).
    const diff = restrictiveness(before) - restrictiveness(after.decision);
    const kind = diff > 0 ? 'stricter' : diff < 0 ? 'looser' : 'unchanged';
    const rule = after.matched_rule ?? row.evaluation.matched_rule ?? '(default)';
    const bucket = (report.by_rule[rule] ??= { stricter: 0, looser: 0, unchanged: 0, changed: 0 });
    bucket[kind] += 1;
    report[kind] += 1;
    const changed = after.decision !== before || after.matched_rule !== row.evaluation.matched_rule;
    if (changed) {
      bucket.changed += 1;
      report.changed += 1;
      if (report.examples.length < 20) report.examples.push({ decision_id: row.decision_id, before, after: after.decision, rule: after.matched_rule });
    }
  }
  const documentHash = sha256Digest(s.draft.document);
  await append(db, a.tenantId, policyId, s.stream_version, [{ type: 'PolicyValidated', eventId: eid(a.tenantId, policyId, 'validated'), data: { policy_id: policyId, version: s.draft.version, document_hash: documentHash, report: report, validated_by: a.principalId } }], now);
  return { ...report, version: s.draft.version, document_hash: documentHash };
}

// --- bindings -------------------------------------------------------------------------------------

export async function currentBinding(db: Db, tenantId: string, agentId: string): Promise<{ policy_id: string | null; stream_version: number }> {
  const res = await withTenant(db, tenantId, (c) => c.query<{ type: string; data: { policy_id: string }; stream_version: number }>(
    `SELECT type, data, stream_version FROM events WHERE stream_id = $1 AND tenant_id = $2 ORDER BY stream_version`, [agentStreamId(tenantId, agentId), tenantId],
  ));
  let policy: string | null = null;
  for (const r of res.rows) {
    if (r.type === 'PolicyBound') policy = r.data.policy_id;
    else if (r.type === 'PolicyUnbound') policy = null;
  }
  return { policy_id: policy, stream_version: res.rows.at(-1)?.stream_version ?? 0 };
}

/** Verifies a document compiles as version `version` (for import checks). */
export const compilesAs = compilePolicyVersion;

// --- import -----------------------------------------------------------------------------------------

/**
 * Lands a signed export as the draft of its policy (a new policy, or the next version's draft of an existing
 * one). Refused, writing nothing: a file that is not an export (400), one whose hash or signature does not
 * hold or whose key this deployment does not know (422, with the reason), a policy that already has a draft or
 * a review waiting, or a scope other than the one fixed by the first activation (409).
 */
export async function importPolicy(db: Db, keys: PublicKeySet, a: Actor, raw: unknown, now = new Date()): Promise<PolicyState> {
  const checked = verifyExport(raw, keys);
  if (!checked.ok) {
    if (checked.reason === 'malformed') throw new CountersignError('validation_failed', checked.detail, { errors: checked.errors });
    throw new CountersignError('unprocessable', `the export is refused: ${checked.detail}`, { extra: { reason: checked.reason }, ...(checked.errors ? { errors: checked.errors } : {}) });
  }
  const e = checked.export;
  checkDocument(e.document, a.tenantId);
  const s = await loadPolicy(db, a.tenantId, e.policy_id);
  if (s && !s.deleted) {
    if (s.draft) throw new CountersignError('conflict', `policy ${e.policy_id} already has a draft (version ${s.draft.version}); delete or activate it before importing`);
    notUnderReview(s, 'imported');
    checkScope(s, e.document);
  }
  const version = (s?.versions.at(-1)?.version ?? 0) + 1;
  await append(db, a.tenantId, e.policy_id, s?.stream_version ?? 0, [{
    type: 'PolicyImported', eventId: eid(a.tenantId, e.policy_id, 'imported'),
    data: {
      policy_id: e.policy_id, version, document: e.document, signature_verified: true, imported_by: a.principalId,
      source: { policy_id: e.policy_id, version: e.version, hash: e.hash, signature: e.signature, signing_key_id: e.signing_key_id, exported_at: e.exported_at },
    },
  }], now);
  return (await loadPolicy(db, a.tenantId, e.policy_id))!;
}
