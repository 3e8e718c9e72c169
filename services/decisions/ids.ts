// Pure id helpers, safe in workflow code.
export const runStreamId = (decisionId: string) => `run-${decisionId}`;
export const workflowIdFor = (tenantId: string, decisionId: string) => `decision/${tenantId}/${decisionId}`;
/** Event ids are derived from their cause: the run and its position in it. A retried append repeats them. */
export const runEventId = (decisionId: string, streamVersion: number) => `${decisionId}/${streamVersion}`;
