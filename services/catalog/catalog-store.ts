import type pg from 'pg';
import type { EventData } from '../../schemas/events.ts';
import {
  CatalogSource, MAX_ENTRIES_PER_TENANT, MAX_SOURCES_PER_TENANT, type RegisterCatalogBody,
} from '../../schemas/tool-catalog.ts';
import { CountersignError } from '../errors.ts';
import { appendToStream } from '../events/append-to-stream.ts';
import { isConnectionError, withTenant, type Db } from '../events/db.ts';
import { applyCatalogChange, catalogHash, EMPTY_CATALOG, sourceFromRegistration, type CatalogState } from '../policy/index.ts';
import { sha256Digest } from '../receipts/canonical.ts';
import { catalogStreamId } from '../events/stream-ids.ts';

/**
 * A tenant's tool catalog. The record is the event stream `catalog/<tenant>`; the tables of migration 0010
 * are its projection, written in the same transaction as each event (so they never disagree with the
 * stream's head), and read by the decision path. Replay folds the events, never the tables.
 */

export type CatalogActor = { tenantId: string; principalId: string };
export type SourceInfo = { registered_by: string; registered_at: string };
export type StoredCatalog = CatalogState & { info: Map<string, SourceInfo> };

export { catalogStreamId };

const MAX_ATTEMPTS = 5;

function dependency(err: unknown): unknown {
  return isConnectionError(err) ? CountersignError.dependency('postgres', err) : err;
}

async function readCatalog(client: pg.PoolClient, tenantId: string): Promise<StoredCatalog> {
  const head = await client.query<{ version: number; hash: string }>('SELECT version, hash FROM tool_catalog_heads WHERE tenant_id = $1', [tenantId]);
  if (head.rows.length === 0) return { ...EMPTY_CATALOG, info: new Map() };
  const rows = await client.query<{ source_id: string; format: string; tool: string | null; document_digest: string; entries: unknown; registered_by: string; registered_at: Date }>(
    'SELECT source_id, format, tool, document_digest, entries, registered_by, registered_at FROM tool_catalog_sources WHERE tenant_id = $1 ORDER BY source_id COLLATE "C"',
    [tenantId],
  );
  const sources = rows.rows.map((r) => CatalogSource.parse({ source_id: r.source_id, format: r.format, tool: r.tool, document_digest: r.document_digest, entries: r.entries }));
  const { version, hash } = head.rows[0]!;
  // The projection must say what the stream says: a decision records this hash, and replay checks it
  // against the events. A drifted projection is refused here rather than recorded under a wrong hash.
  if (catalogHash(sources) !== hash) throw new Error(`tool catalog projection of tenant ${tenantId} does not match its recorded hash at version ${version}`);
  return { version, hash, sources, info: new Map(rows.rows.map((r) => [r.source_id, { registered_by: r.registered_by, registered_at: r.registered_at.toISOString() }])) };
}

/** The tenant's current catalog (version 0 and no sources when it never registered one). */
export async function loadCatalog(db: Db, tenantId: string): Promise<StoredCatalog> {
  try {
    return await withTenant(db, tenantId, (c) => readCatalog(c, tenantId));
  } catch (err) {
    throw dependency(err);
  }
}

type Change = { type: 'ToolCatalogRegistered'; data: EventData<'ToolCatalogRegistered'> } | { type: 'ToolCatalogRemoved'; data: EventData<'ToolCatalogRemoved'> };

/**
 * Appends one change at the version it was computed from (expected version = the projection's head, which
 * is the stream's head). A concurrent change makes that a conflict: recompute and try again. The event id
 * carries the digest of its data, so a retry of the same change is a duplicate, never a second event, and
 * two different changes at one version can never be mistaken for each other.
 */
async function appendChange(db: Db, actor: CatalogActor, from: CatalogState, next: CatalogState, change: Change, project: (c: pg.PoolClient) => Promise<void>, now: Date): Promise<void> {
  await appendToStream(db, {
    streamId: catalogStreamId(actor.tenantId),
    tenantId: actor.tenantId,
    expectedVersion: from.version,
    recordedAt: now,
    events: [{ ...change, eventId: `${catalogStreamId(actor.tenantId)}/${next.version}/${sha256Digest(change.data).slice(7, 31)}` }],
    alsoInTransaction: async (c) => {
      await project(c);
      await c.query(
        `INSERT INTO tool_catalog_heads (tenant_id, version, hash) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id) DO UPDATE SET version = EXCLUDED.version, hash = EXCLUDED.hash`,
        [actor.tenantId, next.version, next.hash],
      );
    },
  });
}

async function withRetries<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof CountersignError && err.code === 'conflict' && attempt < MAX_ATTEMPTS) continue;
      throw dependency(err);
    }
  }
}

export type RegisterResult = { changed: boolean; created: boolean; catalog: StoredCatalog; source: CatalogSource };

/**
 * Registers (or replaces) one source from an OpenAPI document or an MCP tools/list result. A document that
 * derives nothing usable is refused with every problem and its path, and nothing is written. Registering
 * the same document again changes nothing (no event).
 */
export async function registerCatalogSource(db: Db, actor: CatalogActor, body: RegisterCatalogBody, now: Date): Promise<RegisterResult> {
  const built = sourceFromRegistration(body);
  if (!built.ok) throw new CountersignError('validation_failed', `the document is not a usable ${body.format === 'openapi' ? 'OpenAPI document' : 'MCP tools/list result'}`, { errors: built.errors });
  const source = built.source;
  return withRetries(async () => {
    const current = await loadCatalog(db, actor.tenantId);
    const existing = current.sources.find((s) => s.source_id === source.source_id);
    if (existing && sha256Digest(existing) === sha256Digest(source)) return { changed: false, created: false, catalog: current, source };
    const others = current.sources.filter((s) => s.source_id !== source.source_id);
    if (others.length + 1 > MAX_SOURCES_PER_TENANT) {
      throw new CountersignError('unprocessable', `the catalog already holds ${others.length} sources; the limit is ${MAX_SOURCES_PER_TENANT} (remove one first)`, { errors: [{ path: 'source', message: 'too many sources' }] });
    }
    const total = others.reduce((n, s) => n + s.entries.length, 0) + source.entries.length;
    if (total > MAX_ENTRIES_PER_TENANT) {
      throw new CountersignError('unprocessable', `the catalog would hold ${total} entries; the limit is ${MAX_ENTRIES_PER_TENANT}`, { errors: [{ path: 'document', message: 'too many operations for this tenant' }] });
    }
    const next = applyCatalogChange(current, { kind: 'registered', source });
    const data: EventData<'ToolCatalogRegistered'> = { ...source, catalog_version: next.version, catalog_hash: next.hash, registered_by: actor.principalId };
    await appendChange(db, actor, current, next, { type: 'ToolCatalogRegistered', data }, (c) => c.query(
      `INSERT INTO tool_catalog_sources (tenant_id, source_id, format, tool, document_digest, entries, entry_count, registered_by, registered_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (tenant_id, source_id) DO UPDATE SET format = EXCLUDED.format, tool = EXCLUDED.tool, document_digest = EXCLUDED.document_digest,
           entries = EXCLUDED.entries, entry_count = EXCLUDED.entry_count, registered_by = EXCLUDED.registered_by, registered_at = EXCLUDED.registered_at`,
      [actor.tenantId, source.source_id, source.format, source.tool, source.document_digest, JSON.stringify(source.entries), source.entries.length, actor.principalId, now],
    ).then(() => undefined), now);
    const info = new Map(current.info);
    info.set(source.source_id, { registered_by: actor.principalId, registered_at: now.toISOString() });
    return { changed: true, created: existing === undefined, catalog: { ...next, info }, source };
  });
}

/** Removes one source; its tools stop being tagged from the next decision on. */
export async function removeCatalogSource(db: Db, actor: CatalogActor, sourceId: string, now: Date): Promise<StoredCatalog> {
  return withRetries(async () => {
    const current = await loadCatalog(db, actor.tenantId);
    if (!current.sources.some((s) => s.source_id === sourceId)) throw new CountersignError('not_found', `no catalog source ${sourceId}`);
    const next = applyCatalogChange(current, { kind: 'removed', source_id: sourceId });
    const data: EventData<'ToolCatalogRemoved'> = { source_id: sourceId, catalog_version: next.version, catalog_hash: next.hash, removed_by: actor.principalId };
    await appendChange(db, actor, current, next, { type: 'ToolCatalogRemoved', data }, (c) => c.query(
      'DELETE FROM tool_catalog_sources WHERE tenant_id = $1 AND source_id = $2', [actor.tenantId, sourceId],
    ).then(() => undefined), now);
    const info = new Map(current.info);
    info.delete(sourceId);
    return { ...next, info };
  });
}
