import type { Db } from '../events/db.ts';
import { PgListener } from '../events/listener.ts';
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
  private readonly listener: PgListener;

  constructor(private readonly db: Db, url: string, log: LogFn) {
    this.listener = new PgListener({
      url, channel: 'tool_catalog_changed', log,
      onNotify: (tenant) => this.invalidate(tenant),
      onLost: () => this.cache.clear(),
    });
  }

  start(): Promise<void> {
    return this.listener.start();
  }

  async stop(): Promise<void> {
    await this.listener.stop();
    this.cache.clear();
  }

  /** Drops a tenant's cached catalog (a notification, or a change this process just wrote). */
  invalidate(tenantId: string): void {
    this.cache.delete(tenantId);
  }

  async current(tenantId: string): Promise<StoredCatalog> {
    const hit = this.listener.listening ? this.cache.get(tenantId) : undefined;
    if (hit) return hit;
    const loading = loadCatalog(this.db, tenantId);
    if (this.listener.listening) {
      this.cache.set(tenantId, loading);
      loading.catch(() => this.cache.delete(tenantId));
    }
    return loading;
  }
}
