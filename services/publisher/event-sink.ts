import type { StoredEvent } from '../../schemas/events.ts';

/**
 * Where committed events go. Kept small on purpose: kafkajs is today's implementation and its maintenance
 * has stalled; swapping it must touch only the file that implements this.
 */
export interface EventSink {
  /** Resolves only once every event is acknowledged by all in-sync replicas. */
  send(events: readonly StoredEvent[]): Promise<void>;
  close(): Promise<void>;
}

export interface EventSource {
  /** Streams the topic from the beginning up to the end as of the call, then returns. */
  readToEnd(onRecord: (record: SourceRecord) => void | Promise<void>): Promise<void>;
}

/** One raw record as it sits on the topic: an auditor must cope with records that are not events at all. */
export type SourceRecord = { partition: number; offset: string; key: string | null; value: string | null; headers: Record<string, string> };
