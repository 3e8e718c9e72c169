import { verifyAttestation } from '../services/decisions/attestation.ts';
import { withTenant, type Db } from '../services/events/db.ts';
import { closeReview, completeReviewedActivation, openActivationReview } from '../services/lifecycle/policy-lifecycle.ts';
import type { Keyring } from '../services/receipts/keyring.ts';
import type {
  AuthorizeResult, AuthorizeReviewerInput, ClosePolicyReviewInput, CompletePolicyReviewInput, CompletePolicyReviewResult,
  OpenPolicyReviewInput, OpenPolicyReviewResult,
} from './types.ts';

/**
 * The I/O of a four-eyes policy activation (workflows/policy-activation-workflow.ts). Each step reads the
 * policy stream, checks the review is where the workflow thinks it is, and appends with the version it read
 * and an event id derived from the review id, so a retry after a commit writes nothing new and answers the same.
 */
export function makePolicyReviewActivities(db: Db, keyring: () => Promise<Keyring>, secret: () => Buffer) {
  return {
    async openPolicyReview(input: OpenPolicyReviewInput): Promise<OpenPolicyReviewResult> {
      return openActivationReview(db, input);
    },
    async completePolicyReview(input: CompletePolicyReviewInput): Promise<CompletePolicyReviewResult> {
      return completeReviewedActivation(db, await keyring(), input);
    },
    async closePolicyReview(input: ClosePolicyReviewInput): Promise<{ ok: true } | { ok: false; reason: string }> {
      return closeReview(db, input);
    },
    /** The API's attestation, and the reviewer's roles as the database has them now (a revoked or disabled admin stops counting). */
    async authorizePolicyReviewer(input: AuthorizeReviewerInput): Promise<AuthorizeResult> {
      const att = verifyAttestation(secret(), input, new Date());
      if (!att.ok) return att;
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
