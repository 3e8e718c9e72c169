// Pure id helpers, safe in workflow code.
export { runStreamId } from '../events/stream-ids.ts';
export const workflowIdFor = (tenantId: string, decisionId: string) => `decision/${tenantId}/${decisionId}`;
/** Event ids are derived from their cause: the run and its position in it. A retried append repeats them. */
export const runEventId = (decisionId: string, streamVersion: number) => `${decisionId}/${streamVersion}`;
