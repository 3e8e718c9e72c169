import pg from 'pg';
import type { LogFn } from '../logger.ts';

/**
 * Wakes long-polls when a run becomes final (LISTEN run_final, notified by a trigger on DecisionFinalized).
 * One connection per API process. Subscribe before reading, so a notification between the read and the wait
 * is not missed. While disconnected it wakes nobody; waiters still end at their timeout and re-read.
 */
export class RunWatcher {
  private readonly waiters = new Map<string, Set<() => void>>();
  private client: pg.Client | null = null;
  private stopped = false;

  constructor(private readonly url: string, private readonly log: LogFn) {}

  async start(): Promise<void> {
    await this.connect().catch((err: unknown) => {
      this.log('warn', 'run watcher not connected', { error: String(err) });
      this.retry();
    });
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    client.on('notification', (msg) => {
      const set = msg.payload ? this.waiters.get(msg.payload) : undefined;
      if (set) for (const wake of set) wake();
    });
    await client.connect();
    await client.query('LISTEN run_final');
    this.client = client;
  }

  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = null;
    this.retry();
  }

  private retry(): void {
    if (this.stopped) return;
    setTimeout(() => void this.connect().catch(() => this.retry()), 1_000).unref();
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

  async stop(): Promise<void> {
    this.stopped = true;
    await this.client?.end().catch(() => {});
  }
}
