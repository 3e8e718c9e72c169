import type { Db } from '../services/events/db.ts';
import { makeAppendRunEvents } from './append-run-events.ts';
import type { Activities } from './types.ts';

export function createActivities(deps: { db: Db; crashAt?: string | undefined }): Activities {
  return { appendRunEvents: makeAppendRunEvents(deps.db, deps.crashAt) };
}
