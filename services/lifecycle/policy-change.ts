import type { ApprovalChannel } from '../../schemas/approval-channel.ts';
import { randomUUID } from 'node:crypto';
import type { NewEvent, PolicyChange } from '../../schemas/events.ts';
import { CountersignError } from '../errors.ts';
import { appendToStream } from '../events/append-to-stream.ts';
import type { Db } from '../events/db.ts';
import type { Keyring } from '../receipts/keyring.ts';
import { sha256Digest } from '../receipts/canonical.ts';
import { policyStreamId, signedActivation } from './activate-policy.ts';
import {
  append, completeReviewedActivation, currentBinding, eid, loadPolicy, mustLoad, notUnderReview, openActivationReview, policySettings,
  type ActivationAnswer, type Actor, type PolicySettings,
} from './policy-lifecycle.ts';
import { agentStreamId, type PolicyState } from './policy-store.ts';

/**
 * Changes of the active set other than activating a draft: rollback, deprecate, bind and unbind. Each goes
 * through the gates activation goes through. Under four-eyes (`policy_four_eyes`) none is applied when asked:
 * it opens the same review as an activation (workflows/policy-activation-workflow.ts), bound to the change as
 * planned (its hash), and a second admin who wrote no part of it approves it; the direct path refuses with
 * 409. Under the validation gate (`policy_require_validation`, `policy_refuse_loosening`) a rollback, which
 * re-activates a document the tenant's recent runs were never replayed against, is refused: clone the version,
 * validate the draft, and activate it. Every refusal writes nothing.
 */

export type { PolicyChange };

/** What a change will do, checked against the policy as it is now. */
export type ChangePlan = {
  state: PolicyState;
  change: PolicyChange;
  /** The version the review is about: the version a rollback creates, the active version otherwise. */
  version: number;
  /** Binds a review's approval to exactly this change of exactly this state. */
  changeHash: `sha256:${string}`;
  settings: PolicySettings;
  /** Nothing to do (binding an agent to the policy it is bound to already). */
  unchanged?: true;
};

const describe = (policyId: string, c: PolicyChange): string =>
  c.kind === 'rollback' ? `rolling policy ${policyId} back to v${c.to_version}`
    : c.kind === 'deprecate' ? `deprecating policy ${policyId} v${c.version}`
      : c.kind === 'bind' ? `binding policy ${policyId} to agent ${c.agent_id}`
        : `unbinding policy ${policyId} from agent ${c.agent_id}`;

/** The hash a review of this change is bound to; the API and the review's opening both derive it from the state. */
export function changeHash(s: PolicyState, c: PolicyChange): `sha256:${string}` | undefined {
  if (c.kind === 'rollback') {
    const target = s.versions.find((v) => v.version === c.to_version);
    return target ? sha256Digest({ policy_id: s.policy_id, change: c, from_version: s.active_version, document: target.document }) : undefined;
  }
  if (c.kind === 'deprecate') {
    const active = s.versions.find((v) => v.version === s.active_version);
    return active && active.version === c.version ? sha256Digest({ policy_id: s.policy_id, change: c, hash: active.hash }) : undefined;
  }
  return sha256Digest({ policy_id: s.policy_id, change: c });
}

const levelOf = (s: PolicyState): unknown => (s.scope ?? (s.draft?.document['scope'] as Record<string, unknown> | undefined) ?? { level: 'tenant' })['level'];

/** Every check a change must pass before anything is written (or a review is opened), in order. */
export async function planChange(db: Db, a: Actor, policyId: string, change: PolicyChange): Promise<ChangePlan> {
  const s = await mustLoad(db, a.tenantId, policyId);
  notUnderReview(s, change.kind === 'rollback' ? 'rolled back' : change.kind === 'deprecate' ? 'deprecated' : change.kind === 'bind' ? 'bound' : 'unbound');
  const settings = await policySettings(db, a.tenantId);
  let version = s.active_version ?? s.versions.at(-1)?.version ?? s.draft?.version ?? 1;
  let unchanged = false;
  switch (change.kind) {
    case 'rollback': {
      if (!s.versions.some((v) => v.version === change.to_version)) throw new CountersignError('not_found', `policy ${policyId} has no version ${change.to_version}`);
      if (settings.requireValidation) {
        throw new CountersignError('conflict', `this tenant requires validation before activation, and a rollback re-activates v${change.to_version} unvalidated: clone it (POST /v1/policies/${policyId}/clone {"from_version": ${change.to_version}}), validate the draft and activate it`, { extra: { reason: 'not_validated' } });
      }
      version = (s.versions.at(-1)?.version ?? 0) + 1;
      break;
    }
    case 'deprecate':
      if (s.active_version === null) throw new CountersignError('conflict', `policy ${policyId} has no active version to deprecate`);
      break;
    case 'bind': {
      if (levelOf(s) === 'agent') throw new CountersignError('conflict', `policy ${policyId} is agent-scoped already; bind a tenant policy`);
      const b = await currentBinding(db, a.tenantId, change.agent_id);
      if (b.policy_id === policyId) unchanged = true;
      else if (b.policy_id !== null) throw new CountersignError('conflict', `agent ${change.agent_id} is bound to policy ${b.policy_id}; unbind it first`, { extra: { policy_id: b.policy_id } });
      break;
    }
    case 'unbind': {
      const b = await currentBinding(db, a.tenantId, change.agent_id);
      if (b.policy_id !== policyId) throw new CountersignError('not_found', `agent ${change.agent_id} has no bound policy`);
      break;
    }
    default: {
      const never: never = change;
      return never;
    }
  }
  const hash = changeHash(s, change);
  if (hash === undefined) throw new CountersignError('conflict', `policy ${policyId} changed while ${describe(policyId, change)} was being planned; ask again`);
  return { state: s, change, version, changeHash: hash, settings, ...(unchanged ? { unchanged: true as const } : {}) };
}

/** The change of an unbinding, resolved to the policy the agent is bound to (its review lives on that policy). */
export async function unbindTarget(db: Db, tenantId: string, agentId: string): Promise<string> {
  const b = await currentBinding(db, tenantId, agentId);
  if (b.policy_id === null) throw new CountersignError('not_found', `agent ${agentId} has no bound policy`);
  return b.policy_id;
}

type Approval = { reviewId: string; approvedBy: string; comment?: string | undefined; channel?: ApprovalChannel | undefined; requestedBy: string; now: Date };

/**
 * Applies a planned change: one append on the policy stream (with the review's approval when there is one, so
 * nothing slips between them); a binding change appends on the agent's stream first. Event ids of a reviewed
 * change derive from the review id, and each step checks whether it is already done, so a retried activity
 * writes nothing new.
 */
async function applyChange(db: Db, keyring: Keyring, a: Actor, plan: ChangePlan, approval?: Approval): Promise<Record<string, unknown>> {
  const s = plan.state;
  const c = plan.change;
  const policyId = s.policy_id;
  const now = approval?.now ?? new Date();
  const stream = policyStreamId(a.tenantId, policyId);
  const id = (what: string) => (approval ? `${stream}/review/${approval.reviewId}/${what}` : eid(a.tenantId, policyId, what));
  const reviewed = approval ? { approved_by: approval.approvedBy, review_id: approval.reviewId } : {};
  const approved: NewEvent[] = approval
    ? [{ type: 'PolicyActivationApproved', eventId: id('approved'), data: { policy_id: policyId, version: plan.version, review_id: approval.reviewId, by: approval.approvedBy, ...(approval.comment ? { comment: approval.comment } : {}), ...(approval.channel ? { channel: approval.channel } : {}), at: now.toISOString() } }]
    : [];
  const actor = approval?.requestedBy ?? a.principalId;
  switch (c.kind) {
    case 'rollback': {
      const target = s.versions.find((v) => v.version === c.to_version)!;
      const data = { ...signedActivation(keyring, { document: target.document, version: plan.version, actor, frozen: { snapshot: target.snapshot, hash: target.hash, policy_id: policyId, version: target.version } }), ...reviewed };
      await append(db, a.tenantId, policyId, s.stream_version, [
        ...approved,
        { type: 'PolicyRolledBack', eventId: id('rolledback'), data: { policy_id: policyId, from_version: s.active_version, to_version: c.to_version, new_version: plan.version, rolled_back_by: actor, ...reviewed } },
        { type: 'PolicyActivated', eventId: id(`activated-v${plan.version}`), data },
      ], now);
      const answer: ActivationAnswer & { rolled_back_to: number } = { id: policyId, version: plan.version, hash: data.hash, signature: data.signature ?? '', signing_key_id: data.signing_key_id ?? '', status: 'active', unchanged: false, rolled_back_to: c.to_version };
      return answer;
    }
    case 'deprecate':
      await append(db, a.tenantId, policyId, s.stream_version, [...approved, { type: 'PolicyDeprecated', eventId: id('deprecated'), data: { policy_id: policyId, version: c.version, deprecated_by: actor, ...reviewed } }], now);
      return { id: policyId, version: c.version, hash: s.versions.find((v) => v.version === c.version)?.hash ?? '' };
    case 'bind':
    case 'unbind': {
      const agentStream = agentStreamId(a.tenantId, c.agent_id);
      const b = await currentBinding(db, a.tenantId, c.agent_id);
      const done = c.kind === 'bind' ? b.policy_id === policyId : b.policy_id === null;
      if (!done) {
        if (c.kind === 'bind' && b.policy_id !== null) throw new CountersignError('conflict', `agent ${c.agent_id} is bound to policy ${b.policy_id}; unbind it first`, { extra: { policy_id: b.policy_id } });
        if (c.kind === 'unbind' && b.policy_id !== policyId) throw new CountersignError('conflict', `agent ${c.agent_id} is no longer bound to policy ${policyId}`);
        const type = c.kind === 'bind' ? 'PolicyBound' : 'PolicyUnbound';
        await appendToStream(db, {
          streamId: agentStream, tenantId: a.tenantId, expectedVersion: b.stream_version, recordedAt: now,
          events: [{ type, eventId: approval ? `${agentStream}/review/${approval.reviewId}/${c.kind}` : `${agentStream}/${c.kind === 'bind' ? 'bound' : 'unbound'}/${randomUUID()}`, data: { agent_id: c.agent_id, policy_id: policyId, by: actor, ...reviewed } }],
        });
      }
      if (approved.length > 0) await append(db, a.tenantId, policyId, s.stream_version, approved, now);
      return c.kind === 'bind' ? { agent_id: c.agent_id, policy_id: policyId, unchanged: false } : { agent_id: c.agent_id, policy_id: null };
    }
    default: {
      const never: never = c;
      return never;
    }
  }
}

function fourEyesRefusal(policyId: string, c: PolicyChange): CountersignError {
  return new CountersignError('conflict', `this tenant requires a second admin to approve changes of the active set: ${describe(policyId, c)} must go through a review`, { extra: { reason: 'four_eyes' } });
}

/** Applies a change at once (tenants without four-eyes); four-eyes tenants go through `requestChangeReview`. */
export async function changeNow(db: Db, keyring: Keyring, a: Actor, policyId: string, change: PolicyChange): Promise<Record<string, unknown>> {
  const plan = await planChange(db, a, policyId, change);
  if (plan.unchanged && change.kind === 'bind') return { agent_id: change.agent_id, policy_id: policyId, unchanged: true };
  if (plan.settings.fourEyes) throw fourEyesRefusal(policyId, change);
  return applyChange(db, keyring, a, plan);
}

// --- the review's steps (called by the review workflow's activities) ---------------------------------------

export type OpenReviewOptions = Parameters<typeof openActivationReview>[1] & { change?: PolicyChange | undefined };

/** Opens a review: of the draft's activation, or of a change, refused when the policy moved since the plan. */
export async function openPolicyReview(db: Db, opts: OpenReviewOptions): Promise<{ ok: true; version: number; authors: string[] } | { ok: false; reason: string }> {
  const c = opts.change;
  if (c === undefined) return openActivationReview(db, opts);
  const s = await loadPolicy(db, opts.tenantId, opts.policyId);
  if (s?.review?.review_id === opts.reviewId) return { ok: true, version: s.review.version, authors: s.review.authors };
  const moved = { ok: false as const, reason: `policy ${opts.policyId} changed while ${describe(opts.policyId, c)} was being requested; ask again` };
  if (!s || s.deleted) return { ok: false, reason: `policy ${opts.policyId} not found` };
  if (s.stream_version !== opts.expectedStreamVersion || changeHash(s, c) !== opts.documentHash) return moved;
  if (s.review?.status === 'open') return { ok: false, reason: `policy ${opts.policyId} already has a review waiting` };
  const version = c.kind === 'rollback' ? (s.versions.at(-1)?.version ?? 0) + 1 : s.active_version ?? s.versions.at(-1)?.version ?? s.draft?.version ?? 1;
  const authors = [opts.requestedBy];
  const stream = policyStreamId(opts.tenantId, opts.policyId);
  try {
    await append(db, opts.tenantId, opts.policyId, s.stream_version, [{
      type: 'PolicyActivationRequested', eventId: `${stream}/review/${opts.reviewId}/requested`,
      data: { policy_id: opts.policyId, version, review_id: opts.reviewId, document_hash: opts.documentHash, requested_by: opts.requestedBy, authors, deadline: opts.deadline, change: c },
    }], opts.now ?? new Date());
  } catch (err) {
    if (err instanceof CountersignError && err.code === 'conflict') return moved;
    throw err;
  }
  return { ok: true, version, authors };
}

/** The end of an approved review: the activation of the draft, or the change it stands for. Idempotent. */
export async function completePolicyReview(
  db: Db, keyring: Keyring,
  opts: { tenantId: string; policyId: string; reviewId: string; approvedBy: string; comment?: string | undefined; channel?: ApprovalChannel | undefined; now?: Date },
): Promise<{ ok: true; version: number; hash: string } | { ok: false; reason: string }> {
  const s = await loadPolicy(db, opts.tenantId, opts.policyId);
  const r = s?.review;
  if (!s || !r || r.review_id !== opts.reviewId) return { ok: false, reason: 'the review is not in the policy\'s log' };
  const c = r.change;
  if (c === undefined) return completeReviewedActivation(db, keyring, opts);
  const a: Actor = { tenantId: opts.tenantId, principalId: r.requested_by };
  const hashOf = (st: PolicyState) => st.versions.find((v) => v.version === (c.kind === 'rollback' ? r.version : c.kind === 'deprecate' ? c.version : st.active_version))?.hash ?? '';
  // A binding change writes the agent's stream first and the approval last, so an approved review is complete.
  if (r.status === 'approved') return { ok: true, version: r.version, hash: hashOf(s) };
  if (r.status !== 'open') return { ok: false, reason: `the review is already ${r.status}` };
  if (changeHash(s, c) !== r.document_hash) return { ok: false, reason: `policy ${opts.policyId} is no longer what the review is bound to` };
  const settings = await policySettings(db, opts.tenantId);
  if (c.kind === 'rollback' && settings.requireValidation) return { ok: false, reason: 'this tenant now requires validation before activation: clone the version, validate it and activate it' };
  const plan: ChangePlan = { state: s, change: c, version: r.version, changeHash: r.document_hash, settings };
  try {
    await applyChange(db, keyring, a, plan, { reviewId: r.review_id, approvedBy: opts.approvedBy, comment: opts.comment, channel: opts.channel, requestedBy: r.requested_by, now: opts.now ?? new Date() });
  } catch (err) {
    if (err instanceof CountersignError && err.code === 'conflict') return { ok: false, reason: err.message };
    throw err;
  }
  const after = (await loadPolicy(db, opts.tenantId, opts.policyId))!;
  return { ok: true, version: r.version, hash: hashOf(after) };
}
