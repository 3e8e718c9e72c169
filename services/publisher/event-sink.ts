import type { StoredEvent } from '../../schemas/events.ts';

/**
 * Where committed events go. Kept small on purpose: kafkajs is today's implementation and its maintenance
 * has stalled; swapping it must touch only the file that implements this.
 */
/** Where a publisher is in the log: just after the event of this (tx_id, position) (see outbox.ts). */
export type Checkpoint = { txId: string; position: string };

/** Extra record headers by event id (the W3C trace context of a traced event's publish span). */
export type EventHeaders = ReadonlyMap<string, Record<string, string>>;

export interface EventSink {
  /**
   * Resolves only once every event is acknowledged by all in-sync replicas. With `through` (the checkpoint just
   * after the last event), a sink that can commits the checkpoint with the events, atomically.
   */
  send(events: readonly StoredEvent[], through?: Checkpoint, headers?: EventHeaders): Promise<void>;
  /**
   * The checkpoint committed with the last send of any publisher of this destination, for a sink that keeps
   * one (null when none was ever committed). Asking fences every earlier publisher of the destination: a
   * send of theirs still on its way can no longer commit, so resuming after the answer sends nothing twice.
   */
  resumeFrom?(): Promise<Checkpoint | null>;
  close(): Promise<void>;
}

export interface EventSource {
  /** Streams the topic from the beginning up to the end as of the call, then returns. */
  readToEnd(onRecord: (record: SourceRecord) => void | Promise<void>): Promise<void>;
}

/** One raw record as it sits on the topic: an auditor must cope with records that are not events at all. */
export type SourceRecord = { partition: number; offset: string; key: string | null; value: string | null; headers: Record<string, string> };
