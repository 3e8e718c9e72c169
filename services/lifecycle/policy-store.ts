import type { EventData, EventType } from '../../schemas/events.ts';
import type { ActivationReviewSummary, PolicySummary, VersionSummary } from '../../schemas/policy-api.ts';
import { canonicalJson } from '../receipts/canonical.ts';
import { adaptForeignDocument } from '../policy/foreign-formats.ts';
import { evolveReview, isReviewEvent, type ActivationReview } from './activation-review.ts';

export { agentStreamId } from '../events/stream-ids.ts';

export type PolicyEvent = { type: string; data: Record<string, unknown>; recorded_at: string; stream_version: number };

export type ActivatedVersion = {
  version: number;
  hash: string;
  signature: string | null;
  signing_key_id: string | null;
  scope: Record<string, unknown>;
  document: Record<string, unknown>;
  snapshot: Record<string, unknown>;
  activated_by: string;
  activated_at: string;
  /** Set when this version re-activates an earlier one (rollback). */
  rolled_back_to?: number;
  cloned_from?: number;
  /** Four-eyes activation: the second admin who approved it. */
  approved_by?: string;
  imported?: boolean;
};

export type DraftState = {
  /** The version the draft becomes when activated: always the next one after the latest activation. */
  version: number;
  document: Record<string, unknown>;
  drafted_by: string;
  updated_at: string;
  cloned_from?: number;
  imported?: boolean;
  /** Everyone who wrote this draft (drafted, edited, imported): none of them may approve its activation. */
  authors: string[];
  /** The last validation of exactly this document, if any. */
  validation?: Record<string, unknown>;
};

export type PolicyStatus = 'draft' | 'active' | 'deprecated' | 'deleted';

export type PolicyState = {
  policy_id: string;
  /** Stream version (for optimistic concurrency). */
  stream_version: number;
  versions: ActivatedVersion[];
  active_version: number | null;
  deprecated: boolean;
  draft: DraftState | null;
  deleted: boolean;
  /** Fixed by the first activation; null before. */
  scope: Record<string, unknown> | null;
  status: PolicyStatus;
  /** The latest four-eyes activation review (open, or how it ended). */
  review: ActivationReview | null;
};

/** The review waiting for a second admin, if any. */
export const openReview = (s: PolicyState): ActivationReview | null => (s.review?.status === 'open' ? s.review : null);

/** Folds one policy stream into its lifecycle state (pure). */
export function foldPolicy(policyId: string, events: PolicyEvent[]): PolicyState | null {
  if (events.length === 0) return null;
  const s: PolicyState = { policy_id: policyId, stream_version: 0, versions: [], active_version: null, deprecated: false, draft: null, deleted: false, scope: null, status: 'draft', review: null };
  let pendingRollback: number | undefined;
  const nextVersion = () => (s.versions.at(-1)?.version ?? 0) + 1;
  for (const e of events) {
    s.stream_version = e.stream_version;
    const type = e.type as EventType;
    switch (type) {
      case 'PolicyDrafted': {
        const d = e.data as EventData<'PolicyDrafted'>;
        s.draft = { version: nextVersion(), document: d.document, drafted_by: d.drafted_by, updated_at: e.recorded_at, authors: [d.drafted_by], ...(d.cloned_from !== undefined ? { cloned_from: d.cloned_from } : {}) };
        s.deleted = false;
        break;
      }
      case 'PolicyImported': {
        const d = e.data as EventData<'PolicyImported'>;
        s.draft = { version: nextVersion(), document: d.document, drafted_by: d.imported_by, updated_at: e.recorded_at, imported: true, authors: [d.imported_by] };
        s.deleted = false;
        break;
      }
      case 'PolicyEdited': {
        const d = e.data as EventData<'PolicyEdited'>;
        if (s.draft) {
          s.draft.document = d.document;
          s.draft.updated_at = e.recorded_at;
          if (!s.draft.authors.includes(d.edited_by)) s.draft.authors.push(d.edited_by);
          delete s.draft.validation;
        }
        break;
      }
      case 'PolicyValidated': {
        const d = e.data as EventData<'PolicyValidated'>;
        if (s.draft) s.draft.validation = { ...d.report, document_hash: d.document_hash, validated_at: e.recorded_at, validated_by: d.validated_by };
        break;
      }
      case 'PolicyDeleted':
        s.draft = null;
        if (s.versions.length === 0) s.deleted = true;
        break;
      case 'PolicyRolledBack':
        pendingRollback = (e.data as EventData<'PolicyRolledBack'>).to_version;
        break;
      case 'PolicyActivated': {
        const d = e.data as EventData<'PolicyActivated'>;
        const v: ActivatedVersion = {
          version: d.version, hash: d.hash, signature: d.signature ?? null, signing_key_id: d.signing_key_id ?? null, scope: d.scope,
          document: d.document, snapshot: d.snapshot, activated_by: d.activated_by, activated_at: e.recorded_at,
        };
        if (pendingRollback !== undefined) v.rolled_back_to = pendingRollback;
        else if (s.draft?.cloned_from !== undefined) v.cloned_from = s.draft.cloned_from;
        if (pendingRollback === undefined && s.draft?.imported) v.imported = true;
        if (d.approved_by !== undefined) v.approved_by = d.approved_by;
        pendingRollback = undefined;
        s.versions.push(v);
        s.scope ??= d.scope;
        s.active_version = d.version;
        s.deprecated = false;
        // Activating the draft consumes it; a rollback leaves a pending draft (renumbered to the next version).
        if (v.rolled_back_to === undefined) s.draft = null;
        else if (s.draft) s.draft.version = d.version + 1;
        break;
      }
      case 'PolicyDeprecated':
        s.deprecated = true;
        s.active_version = null;
        break;
      case 'PolicyActivationRequested':
      case 'PolicyActivationApproved':
      case 'PolicyActivationRejected':
      case 'PolicyActivationExpired': {
        const ev = { type: e.type, data: e.data } as { type: string };
        if (isReviewEvent(ev)) s.review = evolveReview(s.review, ev);
        break;
      }
      default:
        break;
    }
  }
  s.status = s.active_version !== null ? 'active' : s.deprecated ? 'deprecated' : s.draft ? 'draft' : s.deleted ? 'deleted' : 'draft';
  return s;
}

/** The summary a list or read answers. */
export function policySummary(s: PolicyState): PolicySummary {
  const latest = s.versions.at(-1);
  // Documents in the seed pages' shapes keep their own names (or none, for a bare rules list): read them as converted.
  const adapted = adaptForeignDocument(s.draft?.document ?? latest?.document);
  const doc = adapted.kind === 'error' ? undefined : (adapted.document as Record<string, unknown> | undefined);
  const meta = (doc?.['metadata'] ?? {}) as Record<string, unknown>;
  return {
    id: s.policy_id,
    name: typeof meta['name'] === 'string' ? meta['name'] : null,
    domain: typeof meta['domain'] === 'string' ? meta['domain'] : null,
    status: s.status,
    active_version: s.active_version,
    latest_version: latest?.version ?? null,
    scope: (s.scope ?? s.draft?.document['scope'] ?? { level: 'tenant' }) as PolicySummary['scope'],
    draft: s.draft ? { version: s.draft.version, updated_at: s.draft.updated_at, cloned_from: s.draft.cloned_from ?? null, imported: s.draft.imported ?? false, authors: s.draft.authors, validation: s.draft.validation ?? null } : null,
    activation_review: s.review ? reviewSummary(s.review) : null,
  };
}

export function reviewSummary(r: ActivationReview): ActivationReviewSummary {
  return {
    review_id: r.review_id, version: r.version, status: r.status, requested_by: r.requested_by, authors: r.authors, deadline: r.deadline,
    document_hash: r.document_hash, expected_loosening: r.expected_loosening, approved_by: r.approvals[0]?.by ?? null, rejected_by: r.rejections[0]?.by ?? null,
  };
}

export function versionSummary(v: ActivatedVersion, active: number | null): VersionSummary {
  return {
    version: v.version, hash: v.hash, signature: v.signature, signing_key_id: v.signing_key_id, scope: v.scope as VersionSummary['scope'],
    activated_by: v.activated_by, activated_at: v.activated_at, active: v.version === active,
    rolled_back_to: v.rolled_back_to ?? null, cloned_from: v.cloned_from ?? null, approved_by: v.approved_by ?? null, imported: v.imported ?? false,
  };
}

export type RuleDiff = { rule: string; change: 'added' | 'removed' | 'changed' | 'unchanged'; from?: unknown; to?: unknown };

/** Rule-by-rule difference of two policy documents (rules keyed by name, or by text for natural-language rules). */
export function diffDocuments(from: Record<string, unknown>, to: Record<string, unknown>): { rules: RuleDiff[]; other: Array<{ field: string; from: unknown; to: unknown }> } {
  const rulesOf = (d: Record<string, unknown>) => {
    const m = new Map<string, unknown>();
    const list = Array.isArray(d['rules']) ? (d['rules'] as Array<Record<string, unknown>>) : [];
    list.forEach((r, i) => {
      const key = r['name'] ?? r['text'];
      m.set(typeof key === 'string' ? key : `#${i}`, r);
    });
    return m;
  };
  const a = rulesOf(from);
  const b = rulesOf(to);
  const rules: RuleDiff[] = [];
  for (const [name, r] of a) {
    if (!b.has(name)) rules.push({ rule: name, change: 'removed', from: r });
    else if (canonicalJson(r) !== canonicalJson(b.get(name))) rules.push({ rule: name, change: 'changed', from: r, to: b.get(name) });
    else rules.push({ rule: name, change: 'unchanged' });
  }
  for (const [name, r] of b) if (!a.has(name)) rules.push({ rule: name, change: 'added', to: r });
  const other: Array<{ field: string; from: unknown; to: unknown }> = [];
  for (const field of new Set([...Object.keys(from), ...Object.keys(to)])) {
    if (field === 'rules') continue;
    if (canonicalJson(from[field] ?? null) !== canonicalJson(to[field] ?? null)) other.push({ field, from: from[field] ?? null, to: to[field] ?? null });
  }
  return { rules, other };
}
