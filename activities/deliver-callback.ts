import { ApplicationFailure } from '@temporalio/common';
import { checkCallbackUrl, type Resolver } from '../services/callbacks/callback-target.ts';
import { postCallback } from '../services/callbacks/post-callback.ts';
import { canonicalJson } from '../services/receipts/canonical.ts';
import type { Keyring } from '../services/receipts/keyring.ts';
import { signDocument } from '../services/receipts/sign.ts';
import type { CallbackInput } from './types.ts';

/**
 * Calls the agent's callback URL when its decision becomes final: a POST of the decision result, signed with
 * the receipt key (header `x-countersign-signature: <key id>.<base64url Ed25519>` over the canonical JSON
 * body, verifiable with GET /v1/keys). Retried by Temporal with backoff; the receiver deduplicates by
 * decision id. The URL was checked when the decision was asked for, and is checked again here, resolving the
 * host once and connecting to the address checked (services/callbacks): a refused address is not retried.
 * Private addresses are refused unless configured (local development and tests).
 */
export function makeDeliverCallback(keyring: () => Promise<Keyring>, allowPrivate: boolean, resolve?: Resolver) {
  return async function deliverCallback(input: CallbackInput): Promise<{ status: number }> {
    const check = await checkCallbackUrl(input.url, { allowPrivate, ...(resolve ? { resolve } : {}) });
    if (!check.ok) {
      // A name that does not resolve may resolve later; an address we refuse stays refused.
      if (/does not resolve/.test(check.reason)) throw new Error(check.reason);
      throw ApplicationFailure.nonRetryable(check.reason, 'CallbackRefused');
    }
    const body = { event: 'decision.final', tenant_id: input.tenantId, decision: input.result };
    const sig = signDocument(body, await keyring());
    const res = await postCallback(check.target, canonicalJson(body), {
      'content-type': 'application/json', 'x-countersign-signature': `${sig.key_id}.${sig.value}`, 'x-countersign-decision': input.decisionId,
    }, 10_000);
    if (res.status >= 300 && res.status < 400) throw ApplicationFailure.nonRetryable(`callback answered ${res.status}: redirects are not followed`, 'CallbackRedirected');
    if (res.status >= 500 || res.status === 429) throw new Error(`callback answered ${res.status}`);
    return { status: res.status };
  };
}
