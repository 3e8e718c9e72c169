import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { DecisionResult } from '../../schemas/decision.ts';
import { isKnownEventType, type StoredEvent } from '../../schemas/events.ts';
import { statusQuery, toResult } from '../../workflows/decision-workflow.ts';
import { CountersignError } from '../errors.ts';
import type { Db, Queryable } from '../events/db.ts';
import { isConnectionError } from '../events/db.ts';
import { readStream, readTenantStream } from '../events/read-events.ts';
import { runStreamId, workflowIdFor } from './ids.ts';
import type { RunWatcher } from './run-watcher.ts';
import { foldRun, type RunEvent, type RunView } from './run-view.ts';

/** Reads within the caller's scope: pass a client from withTenant. */
export async function loadRunView(db: Queryable, decisionId: string): Promise<{ view: RunView | null; events: StoredEvent[] }> {
  let events: StoredEvent[];
  try {
    events = await readStream(db, runStreamId(decisionId));
  } catch (err) {
    throw isConnectionError(err) ? CountersignError.dependency('postgres', err) : err;
  }
  return { view: foldEvents(events), events };
}

/** A run's view in the tenant's scope, read in one round trip (the decision and approval routes' path). */
export async function loadTenantRunView(db: Db, tenantId: string, decisionId: string): Promise<RunView | null> {
  return foldEvents(await readTenantStream(db, tenantId, runStreamId(decisionId)));
}

const foldEvents = (events: StoredEvent[]) => foldRun(events.filter((e) => isKnownEventType(e.type)).map((e) => ({ type: e.type, data: e.data }) as RunEvent));

/**
 * A decision as the log records it. Tenant isolation: a run of another tenant is "not found", never "forbidden",
 * so ids of other tenants cannot be probed; with `requestedBy` (an agent reading), so is a run another
 * principal asked for.
 */
export async function readDecision(deps: { db: Db; temporal: Client }, tenantId: string, decisionId: string, requestedBy?: string): Promise<DecisionResult> {
  const view = await loadTenantRunView(deps.db, tenantId, decisionId);
  return view ? resultOf(view, tenantId, decisionId, requestedBy) : notStoredYet(deps, tenantId, decisionId, requestedBy);
}

function resultOf(view: RunView, tenantId: string, decisionId: string, requestedBy: string | undefined): DecisionResult {
  if (view.tenant_id !== tenantId) throw notFound(decisionId);
  if (requestedBy !== undefined && view.requested_by !== requestedBy) throw notFound(decisionId);
  return toResult(view);
}

async function notStoredYet(deps: { db: Db; temporal: Client }, tenantId: string, decisionId: string, requestedBy: string | undefined): Promise<DecisionResult> {
  // The workflow may have started and not yet written its first events.
  try {
    const status = await deps.temporal.workflow.getHandle(workflowIdFor(tenantId, decisionId)).query(statusQuery);
    if (status && (requestedBy === undefined || status.requestedBy === requestedBy)) return status.result;
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError) && !/not found/i.test(String((err as Error)?.message))) throw err;
  }
  throw notFound(decisionId);
}

export const notFound = (decisionId: string) => new CountersignError('not_found', `decision ${decisionId} not found`);

/** Long-poll: resolves when the run is final or the wait ends, whichever first (woken by RunWatcher). */
export async function waitForDecision(deps: { db: Db; temporal: Client; watcher: RunWatcher }, tenantId: string, decisionId: string, waitSeconds: number, requestedBy?: string): Promise<DecisionResult> {
  const streamId = runStreamId(decisionId);
  const sub = deps.watcher.subscribe(streamId);
  try {
    // The events read so far: the log is append-only, so each later read asks only for what came after them.
    let events: StoredEvent[] = [];
    const read = async (): Promise<DecisionResult> => {
      if (events.length === 0) events = await readTenantStream(deps.db, tenantId, streamId);
      else events = events.concat(await readTenantStream(deps.db, tenantId, streamId, { afterVersion: events.at(-1)!.stream_version }));
      const view = foldEvents(events);
      return view ? resultOf(view, tenantId, decisionId, requestedBy) : notStoredYet(deps, tenantId, decisionId, requestedBy);
    };
    let latest = await read();
    if (latest.status === 'final' || waitSeconds <= 0) return latest;
    const deadline = Date.now() + waitSeconds * 1000;
    // Re-read at least every few seconds: a notification lost while the listener reconnects only delays.
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return latest;
      await sub.wait(Math.min(left, 5_000));
      latest = await read();
      if (latest.status === 'final') return latest;
    }
  } finally {
    sub.cancel();
  }
}
