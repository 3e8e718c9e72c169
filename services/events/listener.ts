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
  private retryTimer: NodeJS.Timeout | undefined;

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
    clearTimeout(this.retryTimer);
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
    clearTimeout(this.retryTimer);
    // Checked again when it fires: a stopped listener opens no connection.
    this.retryTimer = setTimeout(() => {
      if (!this.stopped) void this.connect().catch(() => this.retry());
    }, 1_000).unref();
  }
}

/**
 * A cache that holds entries only while its listener listens: a notification drops the entries it names
 * (`drops(payload, key)`), a lost connection drops all, so a missed notification never leaves a stale entry.
 */
export class NotifiedCache<V> {
  private readonly entries = new Map<string, Promise<V>>();
  private readonly listener: PgListener;

  private readonly keeps: (value: V) => boolean;

  /** `keeps`: which loaded values are worth keeping (e.g. not a miss, so guessed keys cannot fill the cache). */
  constructor(opts: { url: string; channel: string; log: LogFn; drops: (payload: string, key: string) => boolean; keeps?: (value: V) => boolean }) {
    this.keeps = opts.keeps ?? (() => true);
    this.listener = new PgListener({
      url: opts.url, channel: opts.channel, log: opts.log,
      onNotify: (payload) => this.drop((key) => opts.drops(payload, key)),
      onLost: () => this.entries.clear(),
    });
  }

  start(): Promise<void> {
    return this.listener.start();
  }

  async stop(): Promise<void> {
    await this.listener.stop();
    this.entries.clear();
  }

  /** The cached value, or `load()` (cached while listening; a failed load, or a value not `keeps`, is not kept). */
  get(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.listener.listening ? this.entries.get(key) : undefined;
    if (hit) return hit;
    const loading = load();
    if (this.listener.listening) {
      this.entries.set(key, loading);
      const forget = () => { if (this.entries.get(key) === loading) this.entries.delete(key); };
      loading.then((v) => { if (!this.keeps(v)) forget(); }, forget);
    }
    return loading;
  }

  /** Whether a value (or its load) is held for this key. */
  has(key: string): boolean {
    return this.listener.listening && this.entries.has(key);
  }

  drop(which: (key: string) => boolean): void {
    for (const key of this.entries.keys()) if (which(key)) this.entries.delete(key);
  }
}
