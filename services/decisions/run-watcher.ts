import { PgListener } from '../events/listener.ts';
import type { LogFn } from '../logger.ts';

/**
 * Wakes long-polls when a run becomes final (LISTEN run_final, notified by a trigger on DecisionFinalized).
 * One connection per API process. Subscribe before reading, so a notification between the read and the wait
 * is not missed. While disconnected it wakes nobody; waiters still end at their timeout and re-read.
 */
export class RunWatcher {
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly listener: PgListener;

  constructor(url: string, log: LogFn) {
    this.listener = new PgListener({
      url, channel: 'run_final', log,
      onNotify: (streamId) => {
        const set = this.waiters.get(streamId);
        if (set) for (const wake of set) wake();
      },
    });
  }

  start(): Promise<void> {
    return this.listener.start();
  }

  /** Resolves true when the stream's run becomes final, false when `ms` pass first. */
  subscribe(streamId: string): { wait: (ms: number) => Promise<boolean>; cancel: () => void } {
    let wake!: () => void;
    const woken = new Promise<true>((resolve) => { wake = () => resolve(true); });
    const set = this.waiters.get(streamId) ?? new Set();
    set.add(wake);
    this.waiters.set(streamId, set);
    const cancel = () => {
      set.delete(wake);
      if (set.size === 0) this.waiters.delete(streamId);
    };
    return {
      cancel,
      wait: async (ms) => {
        let t: NodeJS.Timeout | undefined;
        try {
          return await Promise.race([woken, new Promise<false>((resolve) => { t = setTimeout(() => resolve(false), ms); })]);
        } finally {
          clearTimeout(t);
          cancel();
        }
      },
    };
  }

  stop(): Promise<void> {
    return this.listener.stop();
  }
}
