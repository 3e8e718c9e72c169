/**
 * The channels an approver answers from, and a notice is delivered on. A plain list (no zod) so workflow code can
 * build its message schema from it lazily; schemas/events.ts builds the event field from the same list.
 */
export const APPROVAL_CHANNELS = ['api', 'cli', 'dashboard', 'slack', 'email'] as const;
export type ApprovalChannel = (typeof APPROVAL_CHANNELS)[number];
