import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { verifyAttestation, verifyReviewStart } from '../services/decisions/attestation.ts';
import type { StartGuard } from './append-run-events.ts';
import { withSystem, withTenant, type Db } from '../services/events/db.ts';
import { isPlatformScope } from '../services/events/stream-ids.ts';
import { REVIEWER_ROLE } from '../services/lifecycle/activation-review.ts';
import { closeReview } from '../services/lifecycle/policy-lifecycle.ts';
import { completePolicyReview, openPolicyReview } from '../services/lifecycle/policy-change.ts';
import type { Keyring } from '../services/receipts/keyring.ts';
import { canonicalJson } from '../services/receipts/canonical.ts';
import type {
  AuthorizeResult, AuthorizeReviewerInput, ClosePolicyReviewInput, CompletePolicyReviewInput, CompletePolicyReviewResult,
  OpenPolicyReviewInput, OpenPolicyReviewResult,
} from './types.ts';

/**
 * The I/O of a four-eyes policy review (workflows/policy-activation-workflow.ts): an activation or another change of the active set. Each step reads the
 * policy stream, checks the review is where the workflow thinks it is, and appends with the version it read
 * and an event id derived from the review id, so a retry after a commit writes nothing new and answers the same.
 */
export function makePolicyReviewActivities(db: Db, keyring: () => Promise<Keyring>, secret: () => Buffer, refused: StartGuard['refused'] = () => {}) {
  return {
    async openPolicyReview(input: OpenPolicyReviewInput): Promise<OpenPolicyReviewResult> {
      // The review's start must be the API's: the whole input under its MAC, for this very workflow.
      const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
      const reason = reviewStartProblem(input, workflowId, secret());
      if (reason) {
        refused({ workflowId, tenantId: input.tenantId, decisionId: input.reviewId, reason });
        throw ApplicationFailure.create({ type: 'RunStartRefused', message: `review start refused: ${reason}`, nonRetryable: true });
      }
      return openPolicyReview(db, input);
    },
    async completePolicyReview(input: CompletePolicyReviewInput): Promise<CompletePolicyReviewResult> {
      return completePolicyReview(db, await keyring(), input);
    },
    async closePolicyReview(input: ClosePolicyReviewInput): Promise<{ ok: true } | { ok: false; reason: string }> {
      return closeReview(db, input);
    },
    /** The API's attestation, and the reviewer's roles as the database has them now (a revoked or disabled admin stops counting). */
    async authorizePolicyReviewer(input: AuthorizeReviewerInput): Promise<AuthorizeResult> {
      const att = verifyAttestation(secret(), input, new Date());
      if (!att.ok) return att;
      if (isPlatformScope(input.tenant_id)) {
        // A platform policy's review: the answer counts from a platform admin (of any home tenant), who is the
        // platform's admin whatever its roles in that tenant.
        const res = await withSystem(db, 'platform-admin', (c) =>
          c.query<{ platform_admin: boolean; disabled: boolean }>('SELECT platform_admin, disabled_at IS NOT NULL AS disabled FROM principals WHERE id = $1', [input.by]),
        );
        const row = res.rows[0];
        if (!row || !row.platform_admin) return { ok: false, reason: 'only a platform admin may answer the review of a platform policy' };
        if (row.disabled) return { ok: false, reason: 'the principal is disabled' };
        return { ok: true, principal_id: input.by, roles: [REVIEWER_ROLE], groups: [] };
      }
      const res = await withTenant(db, input.tenant_id, (c) =>
        c.query<{ roles: string[]; groups: string[]; disabled: boolean }>('SELECT roles, groups, disabled_at IS NOT NULL AS disabled FROM principals WHERE id = $1 AND tenant_id = $2', [input.by, input.tenant_id]),
      );
      const row = res.rows[0];
      if (!row) return { ok: false, reason: 'the principal does not exist in this tenant' };
      // Disabled after the API vouched for the answer (a worker that was down, a slow queue): it does not count.
      if (row.disabled) return { ok: false, reason: 'the principal is disabled' };
      return { ok: true, principal_id: input.by, roles: row.roles, groups: row.groups };
    },
  };
}

/** Why a review's start is not the API's, or null. */
function reviewStartProblem(input: OpenPolicyReviewInput, workflowId: string, secret: Buffer): string | null {
  const s = input.start;
  if (!s) return 'the review start carries no attestation of the API';
  if (s.reviewId !== workflowId || s.reviewId !== input.reviewId) return 'the review start was attested for another review';
  if (s.tenantId !== input.tenantId || s.policyId !== input.policyId || s.documentHash !== input.documentHash || s.requestedBy !== input.requestedBy
    || s.expectedStreamVersion !== input.expectedStreamVersion || s.expectedLoosening.join('\u0000') !== input.expectedLoosening.join('\u0000')
    || canonicalJson(s.change ?? null) !== canonicalJson(input.change ?? null)) {
    return 'the review opens with other values than its start';
  }
  const v = verifyReviewStart(secret, s);
  return v.ok ? null : v.reason;
}
