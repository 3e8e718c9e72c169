import type { WebClient } from '@slack/web-api';
import type { Db } from '../services/events/db.ts';
import { closeRoundMessages } from '../services/channels/round-messages.ts';
import type { RoundClosedInput, RoundClosedResult } from './types.ts';

/**
 * When a round closes, however it closed (an answer on Slack, email, the API or the CLI, or expiry), every
 * Slack message that carried its buttons shows the final state and loses them. Never throws: a message that
 * cannot be updated is reported, and the round is long decided.
 */
export function makeAnnounceRoundClosed(db: Db, slack: WebClient | undefined) {
  return async function announceRoundClosed(input: RoundClosedInput): Promise<RoundClosedResult> {
    if (!slack) return { updated: 0, errors: [] };
    try {
      return await closeRoundMessages(db, slack, input.tenantId, input.decisionId, input.round);
    } catch (err) {
      return { updated: 0, errors: [(err instanceof Error ? err.message : String(err)).slice(0, 300)] };
    }
  };
}
