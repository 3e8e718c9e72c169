import pg from 'pg';
import type { LogFn } from '../logger.ts';

/**
 * One Postgres LISTEN connection that keeps itself alive: after a failed start or a lost connection it tries
 * again every second, and tells its owner when it is lost. Caches that depend on its notifications must hold
 * nothing while `listening` is false, since a notification sent meanwhile is gone for good.
 */
export class PgListener {
  private client: pg.Client | null = null;
  private stopped = false;

  constructor(private readonly opts: {
    url: string;
    /** A channel name the code chooses (not input): LISTEN takes no parameters. */
    channel: string;
    log: LogFn;
    onNotify: (payload: string) => void;
    /** Called once per lost connection (not when stopped). */
    onLost?: () => void;
  }) {
    if (!/^[a-z_][a-z0-9_]*$/.test(opts.channel)) throw new Error(`not a channel name: ${opts.channel}`);
  }

  get listening(): boolean {
    return this.client !== null;
  }

  async start(): Promise<void> {
    this.stopped = false;
    if (this.client) return;
    await this.connect().catch((err: unknown) => {
      this.opts.log('warn', `${this.opts.channel} listener not connected; retrying`, { error: err instanceof Error ? err.message : String(err) });
      this.retry();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.opts.url });
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    client.on('notification', (msg) => this.opts.onNotify(msg.payload ?? ''));
    try {
      await client.connect();
      await client.query(`LISTEN ${this.opts.channel}`);
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    if (this.stopped) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
  }

  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = null;
    this.opts.onLost?.();
    this.retry();
  }

  private retry(): void {
    if (this.stopped) return;
    setTimeout(() => void this.connect().catch(() => this.retry()), 1_000).unref();
  }
}
