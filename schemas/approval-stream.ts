import { z } from 'zod';

/**
 * GET /v1/approvals/stream: server-sent events (text/event-stream) for the caller's inbox. Each change is one
 * event named `round` whose data is this object as JSON; a `: ping` comment line comes every 15 seconds.
 * `id` is the decision id (kinds decision and override) or the review id (activation_review): refetch
 * GET /v1/approvals on `open`, drop the card on `closed`.
 */
export const ApprovalStreamEvent = z.strictObject({
  id: z.string().describe('The decision id (decision and override rounds) or the review id (activation reviews).'),
  kind: z.enum(['decision', 'override', 'activation_review']),
  status: z.enum(['open', 'closed']).describe("open: the caller may now answer it (a new round, or one escalated to a group of the caller's); closed: the caller may no longer answer it."),
  reason: z.enum(['requested', 'escalated', 'answered', 'approved', 'rejected', 'expired', 'finalized']).describe(
    'requested: a new round or review; escalated: it moved to the next level (open for its groups, closed for any left out); '
    + 'answered: closed, the caller answered it, or it was answered for the caller under a delegation (still open for others); '
    + 'open, another approver answered and it still waits for more (the answers so far changed); '
    + 'approved / rejected / expired: how it closed; finalized: the run ended otherwise.',
  ),
});
export type ApprovalStreamEvent = z.infer<typeof ApprovalStreamEvent>;

/** The SSE event name of every change. */
export const APPROVAL_STREAM_EVENT = 'round';

/** The comment line sent every PING_SECONDS, so proxies keep the connection and clients notice a dead one. */
export const APPROVAL_STREAM_PING_SECONDS = 15;
