import { withTenant, type Db } from '../services/events/db.ts';
import { readAttestationSecret } from '../services/decisions/attestation.ts';
import { loadKeyring, loadPublicKeys, type Keyring } from '../services/receipts/keyring.ts';
import type { PublicKeySet } from '../schemas/receipt.ts';
import { makeAnnounceRoundClosed } from './announce-round-closed.ts';
import { makeAppendRunEvents, type Finalized, type StartGuard } from './append-run-events.ts';
import { makeAuthorize } from './authorize.ts';
import { makeDeliverCallback } from './deliver-callback.ts';
import { makeIssueReceipt } from './issue-receipt.ts';
import { makeJudgeRequest } from './judge-request.ts';
import { makeNotifyApprovers, type ChannelDeps } from './notify-approvers.ts';
import { makePolicyReviewActivities } from './policy-review.ts';
import { makeAnnounceReviewClosed, makeNotifyReviewers } from './notify-reviewers.ts';
import type { PrincipalCache } from '../services/identity/key-cache.ts';
import type { Activities } from './types.ts';

export type ActivityDeps = {
  db: Db;
  keysDir: string;
  attestationSecret?: string | undefined;
  callbackAllowPrivate?: boolean;
  /** Hosts (host or host:port) whose evaluator URLs skip the private-address check (COUNTERSIGN_EVALUATOR_ALLOW_HOSTS). */
  evaluatorAllowHosts?: string[];
  crashAt?: string | undefined;
  channels?: ChannelDeps;
  /** The worker's cache of principals' roles and groups (answers are checked against it). */
  principals?: PrincipalCache;
  /** Told of each run start refused for want of the API's signature (the worker's metric and warning). */
  onRefusedStart?: StartGuard['refused'];
  /** Told of each message to a run that the worker refused (unsigned, forged, stale, unknown principal). */
  onRefusedMessage?: (kind: string, reason: string) => void;
  /** Told of each decision made final, with the time from its request (the worker's metrics). */
  onFinalized?: (decision: string, via: string, seconds: number) => void;
};

/** A key id the worker has not seen re-reads the key set at most this often (a forged id costs no more). */
const KEYS_REFRESH_MS = 5_000;

export function createActivities(deps: ActivityDeps): Activities {
  // Loaded on first use and kept: a rotation takes effect for a worker at its next start.
  let keyring: Promise<Keyring> | null = null;
  const getKeyring = () => (keyring ??= loadKeyring(deps.keysDir).catch((err: unknown) => { keyring = null; throw err; }));
  let secret: Buffer | null = null;
  const getSecret = () => (secret ??= readAttestationSecret(deps.keysDir, deps.attestationSecret));
  let keys: PublicKeySet | null = null;
  let keysReadAt = 0;
  const guard: StartGuard = {
    keys: async (fresh) => {
      if (fresh && Date.now() - keysReadAt >= KEYS_REFRESH_MS) {
        keysReadAt = Date.now();
        keys = await loadPublicKeys(deps.keysDir).catch(() => keys);
      }
      return (keys ??= (await getKeyring()).publicKeys());
    },
    refused: (r) => {
      try { deps.onRefusedStart?.(r); } catch { /* the trace never changes the refusal */ }
    },
  };
  // The time from request to final: the evaluation's clock when the run finalizes in its first append,
  // else the request time the monitor projection keeps (one indexed read, and only when metrics are wanted).
  const finalized = (f: Finalized) => {
    const tell = deps.onFinalized;
    if (!tell) return;
    const report = (requestedAt: Date | string | undefined) => tell(f.decision, f.via, requestedAt ? Math.max(0, (f.at.getTime() - new Date(requestedAt).getTime()) / 1000) : 0);
    if (f.requestedAt) return report(f.requestedAt);
    void withTenant(deps.db, f.tenantId, (c) => c.query<{ requested_at: Date }>('SELECT requested_at FROM decision_monitor WHERE tenant_id = $1 AND decision_id = $2', [f.tenantId, f.decisionId]))
      .then((r) => report(r.rows[0]?.requested_at), () => report(undefined));
  };
  const authorize = makeAuthorize(deps.db, getSecret, deps.principals, deps.onRefusedMessage);
  return {
    appendRunEvents: makeAppendRunEvents(deps.db, guard, deps.crashAt, getKeyring, finalized, authorize),
    issueReceipt: makeIssueReceipt(deps.db, getKeyring),
    authorize,
    notifyApprovers: makeNotifyApprovers(deps.db, deps.channels),
    announceRoundClosed: makeAnnounceRoundClosed(deps.db, deps.channels?.slack),
    deliverCallback: makeDeliverCallback(getKeyring, deps.callbackAllowPrivate ?? false),
    judgeRequest: makeJudgeRequest(deps.db, { allowHosts: deps.evaluatorAllowHosts ?? [] }),
    notifyReviewers: makeNotifyReviewers(deps.db, deps.channels),
    announceReviewClosed: makeAnnounceReviewClosed(deps.db, deps.channels?.slack),
    ...makePolicyReviewActivities(deps.db, getKeyring, getSecret, guard.refused),
  };
}
