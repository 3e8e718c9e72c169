import type { Client } from '@temporalio/client';
import { CountersignError } from '../errors.ts';

/** Long enough to ride out a worker restart; a message is counted when the update returns, or it was not. */
export const UPDATE_DEADLINE_MS = 60_000;
const RECOVERY_POLL_MS = 500;

/**
 * A worker died with the workflow task in flight: Temporal refuses updates (before admitting them, so nothing is
 * recorded) until another worker completes the task.
 */
export const workerRecovering = (err: unknown): boolean => /Workflow Task in failed state/i.test(`${(err as Error)?.message} ${((err as { cause?: Error })?.cause)?.message}`);

/**
 * The update's id is the message's own (`kind-nonce`): when a try is cut short after Temporal admitted it, the
 * same message sent again joins that update and answers with its outcome, instead of arriving as a second
 * delivery of a spent nonce.
 */
export const updateIdOf = (message: { kind: string; nonce: string }): string => `${message.kind}-${message.nonce}`;

/**
 * Sends one update (`send`, which must carry the message's own update id) and sends it again while a worker is
 * recovering the workflow's task, until `deadlineMs` passes: then a 503 (dependency unavailable). Every other
 * failure is the caller's to map.
 */
export async function sendUpdate<R>(temporal: Pick<Client, 'withDeadline'>, send: () => Promise<R>, deadlineMs = UPDATE_DEADLINE_MS, pollMs = RECOVERY_POLL_MS): Promise<R> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await temporal.withDeadline(deadline, send);
    } catch (err) {
      if (!workerRecovering(err)) throw err;
      if (Date.now() + pollMs >= deadline) throw CountersignError.dependency('temporal', err);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
}
