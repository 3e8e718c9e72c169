import type { Db } from '../events/db.ts';
import { NotifiedCache } from '../events/listener.ts';
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
  private readonly cache: NotifiedCache<StoredCatalog>;

  constructor(private readonly db: Db, url: string, log: LogFn) {
    this.cache = new NotifiedCache({ url, channel: 'tool_catalog_changed', log, drops: (tenant, key) => key === tenant });
  }

  start(): Promise<void> {
    return this.cache.start();
  }

  stop(): Promise<void> {
    return this.cache.stop();
  }

  /** Drops a tenant's cached catalog (a notification, or a change this process just wrote). */
  invalidate(tenantId: string): void {
    this.cache.drop((key) => key === tenantId);
  }

  current(tenantId: string): Promise<StoredCatalog> {
    return this.cache.get(tenantId, () => loadCatalog(this.db, tenantId));
  }
}
