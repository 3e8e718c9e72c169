import type { DecisionRequest } from '../../schemas/decision.ts';
import type { ApprovalEdit } from '../../schemas/events.ts';
import { CountersignError } from '../errors.ts';
import type { Queryable } from '../events/db.ts';
import { evaluate } from '../policy/index.ts';
import { canonicalJson, sha256Digest } from '../receipts/canonical.ts';
import { editedRequest, MAX_EDITED_ARGS_CHARS } from './approval-edit.ts';
import { runStreamId } from './ids.ts';
import { snapshotForRun } from './run-snapshot.ts';
import type { RunView } from './run-view.ts';

/**
 * An approver's edited arguments, evaluated against the run's own snapshot with the run's recorded facts and
 * clock (so the auditor re-derives the same evaluation from the log). Whether it may count is the decider's
 * (checkApprovalEdit); this only builds what it judges.
 */
export async function evaluateEdit(c: Queryable, view: RunView, args: Record<string, unknown>): Promise<ApprovalEdit> {
  const size = canonicalJson(args).length;
  if (size > MAX_EDITED_ARGS_CHARS) {
    throw new CountersignError('payload_too_large', `edited_args is ${size} characters of JSON; at most ${MAX_EDITED_ARGS_CHARS}`, { errors: [{ path: 'body.edited_args', message: `at most ${MAX_EDITED_ARGS_CHARS} characters of JSON` }] });
  }
  if (!view.evaluation) throw new CountersignError('answer_refused', 'the run has no evaluation yet', { extra: { counted: false } });
  const snapshot = await snapshotForRun(c, view);
  const res = await c.query<{ data: { request: DecisionRequest } }>(`SELECT data FROM events WHERE stream_id = $1 AND type = 'DecisionRequested'`, [runStreamId(view.decision_id)]);
  const request = res.rows[0]?.data.request;
  if (!request) throw new CountersignError('answer_refused', 'the run has not been recorded yet', { extra: { counted: false } });
  const evaluation = evaluate(snapshot, editedRequest(request, args), view.evaluation.facts, new Date(view.evaluation.now));
  return { args, args_digest: sha256Digest(args), evaluation };
}
