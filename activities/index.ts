import type { Db } from '../services/events/db.ts';
import { loadAttestationSecret } from '../services/decisions/attestation.ts';
import { loadOrCreateKeyring, type Keyring } from '../services/receipts/keyring.ts';
import { makeAnnounceRoundClosed } from './announce-round-closed.ts';
import { makeAppendRunEvents } from './append-run-events.ts';
import { makeAuthorize } from './authorize.ts';
import { makeDeliverCallback } from './deliver-callback.ts';
import { makeIssueReceipt } from './issue-receipt.ts';
import { makeNotifyApprovers, type ChannelDeps } from './notify-approvers.ts';
import { makePolicyReviewActivities } from './policy-review.ts';
import type { PrincipalCache } from '../services/identity/key-cache.ts';
import type { Activities } from './types.ts';

export type ActivityDeps = {
  db: Db;
  keysDir: string;
  attestationSecret?: string | undefined;
  callbackAllowPrivate?: boolean;
  crashAt?: string | undefined;
  channels?: ChannelDeps;
  /** The worker's cache of principals' roles and groups (answers are checked against it). */
  principals?: PrincipalCache;
};

export function createActivities(deps: ActivityDeps): Activities {
  // Loaded on first use and kept: a rotation takes effect for a worker at its next start.
  let keyring: Promise<Keyring> | null = null;
  const getKeyring = () => (keyring ??= loadOrCreateKeyring(deps.keysDir).catch((err: unknown) => { keyring = null; throw err; }));
  let secret: Buffer | null = null;
  const getSecret = () => (secret ??= loadAttestationSecret(deps.keysDir, deps.attestationSecret));
  return {
    appendRunEvents: makeAppendRunEvents(deps.db, deps.crashAt, getKeyring),
    issueReceipt: makeIssueReceipt(deps.db, getKeyring),
    authorize: makeAuthorize(deps.db, getSecret, deps.principals),
    notifyApprovers: makeNotifyApprovers(deps.db, deps.channels),
    announceRoundClosed: makeAnnounceRoundClosed(deps.db, deps.channels?.slack),
    deliverCallback: makeDeliverCallback(getKeyring, deps.callbackAllowPrivate ?? false),
    ...makePolicyReviewActivities(deps.db, getKeyring, getSecret),
  };
}
