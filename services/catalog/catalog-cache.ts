import pg from 'pg';
import type { Db } from '../events/db.ts';
import type { LogFn } from '../logger.ts';
import { loadCatalog, type StoredCatalog } from './catalog-store.ts';

/** What the decision path needs: the tenant's current catalog. */
export type CatalogReader = { current(tenantId: string): Promise<StoredCatalog> };

/**
 * Each tenant's current tool catalog, cached for the decision path and dropped when a catalog event lands
 * (Postgres LISTEN tool_catalog_changed, from the trigger of migration 0010; the API that wrote the change
 * also drops it at once). As with the policy cache (services/decisions/active-policies.ts): while the
 * listener is down nothing is cached, so a lost notification can never leave a stale catalog tagging.
 */
export class ToolCatalogs implements CatalogReader {
  private readonly cache = new Map<string, Promise<StoredCatalog>>();
  private listener: pg.Client | null = null;
  private listening = false;
  private stopped = false;

  constructor(private readonly db: Db, private readonly url: string, private readonly log: LogFn) {}

  async start(): Promise<void> {
    this.stopped = false;
    await this.listen().catch((err: unknown) => this.log('warn', 'tool catalog listener not connected', { error: String(err) }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const l = this.listener;
    this.listener = null;
    this.listening = false;
    this.cache.clear();
    await l?.end().catch(() => {});
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    client.on('error', () => this.reconnect(client));
    client.on('end', () => this.reconnect(client));
    client.on('notification', (msg) => this.invalidate(msg.payload ?? ''));
    await client.connect();
    await client.query('LISTEN tool_catalog_changed');
    this.listener = client;
    this.listening = true;
  }

  private reconnect(client: pg.Client): void {
    if (this.listener !== client) return;
    this.listener = null;
    this.listening = false;
    this.cache.clear();
    if (this.stopped) return;
    setTimeout(() => void this.listen().catch(() => this.reconnect(client)), 1_000).unref();
  }

  /** Drops a tenant's cached catalog (a notification, or a change this process just wrote). */
  invalidate(tenantId: string): void {
    this.cache.delete(tenantId);
  }

  async current(tenantId: string): Promise<StoredCatalog> {
    const hit = this.listening ? this.cache.get(tenantId) : undefined;
    if (hit) return hit;
    const loading = loadCatalog(this.db, tenantId);
    if (this.listening) {
      this.cache.set(tenantId, loading);
      loading.catch(() => this.cache.delete(tenantId));
    }
    return loading;
  }
}
