import type { Db } from '../services/events/db.ts';
import { loadOrCreateKeyring, type Keyring } from '../services/receipts/keyring.ts';
import { makeAppendRunEvents } from './append-run-events.ts';
import { makeIssueReceipt } from './issue-receipt.ts';
import type { Activities } from './types.ts';

export function createActivities(deps: { db: Db; keysDir: string; crashAt?: string | undefined }): Activities {
  // Loaded on first use and kept: a rotation takes effect for a worker at its next start.
  let keyring: Promise<Keyring> | null = null;
  const getKeyring = () => (keyring ??= loadOrCreateKeyring(deps.keysDir).catch((err: unknown) => { keyring = null; throw err; }));
  return {
    appendRunEvents: makeAppendRunEvents(deps.db, deps.crashAt),
    issueReceipt: makeIssueReceipt(deps.db, getKeyring),
  };
}
