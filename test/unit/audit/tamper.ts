// Helpers of the replay unit tests: edit a synthetic log the way an attacker would.
import type { StoredEvent } from '../../../schemas/events.ts';
import { eventHash } from '../../../services/events/hash-chain.ts';

/** Recomputes one stream's chain after an edit: the attacker who knows the hash function. */
export function rechain(log: StoredEvent[], streamId: string): void {
  let prev: StoredEvent | null = null;
  for (const e of log.filter((x) => x.stream_id === streamId).sort((a, b) => a.stream_version - b.stream_version)) {
    e.prev_hash = prev?.hash ?? null;
    e.hash = eventHash(e);
    prev = e;
  }
}

/** The n-th run stream of the log. */
export const runStream = (log: StoredEvent[], n: number) => [...new Set(log.filter((e) => e.stream_id.startsWith('run/')).map((e) => e.stream_id))][n]!;

/** The event of a stream at a version. */
export const at = (log: StoredEvent[], stream: string, version: number) => log.find((e) => e.stream_id === stream && e.stream_version === version)!;
