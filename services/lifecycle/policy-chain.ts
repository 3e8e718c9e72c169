import type { EventData } from '../../schemas/events.ts';
import { canonicalJson } from '../receipts/canonical.ts';
import { evolveReview, isReviewEvent, type ActivationReview } from './activation-review.ts';
import { foldPolicy, type PolicyEvent, type PolicyStatus } from './policy-store.ts';

/**
 * The auditor's view of one policy's version chain, from its stream alone (services/audit/replay.ts feeds it
 * the events of Kafka or Postgres): the same `foldPolicy` the API reads with, plus the rules the chain must
 * keep that a hash chain cannot show. A rollback re-activates exactly the document of the version it names;
 * a reviewed activation follows an approval of that review by an admin who wrote no part of the change.
 */
export type ChainVersion = {
  version: number;
  hash: string;
  activated_by: string;
  rolled_back_to: number | null;
  cloned_from: number | null;
  approved_by: string | null;
  imported: boolean;
};

export type PolicyChain = {
  policy_id: string;
  status: PolicyStatus;
  active_version: number | null;
  versions: ChainVersion[];
  draft: { version: number; imported: boolean; cloned_from: number | null } | null;
  reviews: Array<{ review_id: string; version: number; status: ActivationReview['status']; requested_by: string; approved_by: string | null }>;
};

export type ChainEvent = PolicyEvent & { position: string };

export function checkPolicyChain(policyId: string, events: ChainEvent[]): { chain: PolicyChain | null; problems: Array<{ position: string; problem: string }> } {
  const problems: Array<{ position: string; problem: string }> = [];
  const documents = new Map<number, string>();
  const reviews = new Map<string, ActivationReview>();
  let review: ActivationReview | null = null;
  for (const [i, e] of events.entries()) {
    const ev = { type: e.type, data: e.data } as { type: string };
    if (isReviewEvent(ev)) {
      review = evolveReview(review, ev);
      if (review) reviews.set(review.review_id, review);
      if (ev.type === 'PolicyActivationApproved' || ev.type === 'PolicyActivationRejected') {
        const r = reviews.get(ev.data.review_id);
        if (!r) problems.push({ position: e.position, problem: `policy ${policyId}: answer to review ${ev.data.review_id}, which was never requested` });
        else if (r.authors.includes(ev.data.by) || r.requested_by === ev.data.by) problems.push({ position: e.position, problem: `policy ${policyId}: review ${r.review_id} answered by ${ev.data.by}, an author of the change` });
      }
    }
    if (e.type === 'PolicyActivated') {
      const d = e.data as EventData<'PolicyActivated'>;
      documents.set(d.version, canonicalJson(d.document));
      if (d.review_id !== undefined) {
        const r = reviews.get(d.review_id);
        const approved = r?.approvals.find((x) => x.by === d.approved_by);
        if (!r || r.status !== 'approved' || !approved) problems.push({ position: e.position, problem: `policy ${policyId} v${d.version}: activated by review ${d.review_id} without its approval in the log` });
      }
    }
    if (e.type === 'PolicyDeprecated' || e.type === 'PolicyRolledBack') {
      // A change made through a four-eyes review names the review and its approver: both must be in the log.
      const d = e.data as EventData<'PolicyDeprecated'> | EventData<'PolicyRolledBack'>;
      if (d.review_id !== undefined) {
        const r = reviews.get(d.review_id);
        if (!r || r.status !== 'approved' || !r.approvals.some((x) => x.by === d.approved_by) || r.change === undefined) {
          problems.push({ position: e.position, problem: `policy ${policyId}: ${e.type === 'PolicyDeprecated' ? 'deprecated' : 'rolled back'} by review ${d.review_id} without its approval in the log` });
        }
      }
    }
    if (e.type === 'PolicyRolledBack') {
      const d = e.data as EventData<'PolicyRolledBack'>;
      const next = events[i + 1];
      const act = next?.type === 'PolicyActivated' ? (next.data as EventData<'PolicyActivated'>) : null;
      if (!act || act.version !== d.new_version) problems.push({ position: e.position, problem: `policy ${policyId}: rollback to v${d.to_version} is not followed by the activation of v${d.new_version}` });
      else if (documents.get(d.to_version) === undefined) problems.push({ position: e.position, problem: `policy ${policyId}: rollback to v${d.to_version}, which was never activated` });
      else if (documents.get(d.to_version) !== canonicalJson(act.document)) problems.push({ position: next!.position, problem: `policy ${policyId} v${act.version}: a rollback to v${d.to_version} activated another document than v${d.to_version}'s` });
    }
  }
  const s = foldPolicy(policyId, events);
  if (!s) return { chain: null, problems };
  return {
    chain: {
      policy_id: policyId,
      status: s.status,
      active_version: s.active_version,
      versions: s.versions.map((v) => ({
        version: v.version, hash: v.hash, activated_by: v.activated_by, rolled_back_to: v.rolled_back_to ?? null, cloned_from: v.cloned_from ?? null,
        approved_by: v.approved_by ?? null, imported: v.imported ?? false,
      })),
      draft: s.draft ? { version: s.draft.version, imported: s.draft.imported ?? false, cloned_from: s.draft.cloned_from ?? null } : null,
      reviews: [...reviews.values()].map((r) => ({ review_id: r.review_id, version: r.version, status: r.status, requested_by: r.requested_by, approved_by: r.approvals[0]?.by ?? null })),
    },
    problems,
  };
}
