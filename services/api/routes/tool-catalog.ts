import { z } from 'zod';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ProblemSchema } from '../../../schemas/api.ts';
import { CatalogEntry, CatalogFormat, CatalogSourceId, CatalogToolName, CatalogOperationName, RegisterCatalogBody, CatalogRiskTag } from '../../../schemas/tool-catalog.ts';
import { loadCatalog, registerCatalogSource, removeCatalogSource, type StoredCatalog } from '../../catalog/catalog-store.ts';
import type { ToolCatalogs } from '../../catalog/catalog-cache.ts';
import { CountersignError } from '../../errors.ts';
import { catalogOf, catalogRiskTags } from '../../policy/index.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';

const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 413: ProblemSchema, 422: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema };
const Sha = z.string();
const SourceSummary = z.strictObject({
  source: CatalogSourceId,
  format: CatalogFormat,
  tool: z.string().nullable(),
  document_digest: Sha,
  entries: z.number().int(),
  registered_by: z.string().nullable(),
  registered_at: z.string().nullable(),
});
const CatalogAnswer = z.strictObject({
  version: z.number().int().describe('The catalog version (0: nothing registered). Decisions record it with the tags they got.'),
  hash: Sha.describe('sha256 over the canonical JSON of the sources; decisions record it.'),
  sources: z.array(SourceSummary),
  entries: z.array(CatalogEntry.extend({ source_id: CatalogSourceId })),
});
const RegisterAnswer = z.strictObject({
  version: z.number().int(),
  hash: Sha,
  changed: z.boolean().describe('false when the same document was registered already (nothing written).'),
  source: SourceSummary,
  entries: z.array(CatalogEntry),
});
const SourceParams = z.strictObject({ source: CatalogSourceId });
const LookupQuery = z.strictObject({ tool: CatalogToolName, operation: CatalogOperationName.optional() });

function summary(c: StoredCatalog, id: string): z.infer<typeof SourceSummary> {
  const s = c.sources.find((x) => x.source_id === id)!;
  const info = c.info.get(id);
  return { source: s.source_id, format: s.format, tool: s.tool, document_digest: s.document_digest, entries: s.entries.length, registered_by: info?.registered_by ?? null, registered_at: info?.registered_at ?? null };
}

function answer(c: StoredCatalog): z.infer<typeof CatalogAnswer> {
  return {
    version: c.version,
    hash: c.hash,
    sources: c.sources.map((s) => summary(c, s.source_id)),
    entries: c.sources.flatMap((s) => s.entries.map((e) => ({ ...e, source_id: s.source_id }))),
  };
}

/**
 * The tenant's tool catalog (issue 3): register an OpenAPI document or an MCP tools/list result, read it,
 * remove a source, and see the tags a tool/operation gets. Admins write; every role reads.
 */
export function registerToolCatalogRoutes(app: FastifyInstance, deps: ApiDeps & { catalogs: ToolCatalogs }): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post('/v1/tools/catalog', {
    onRequest: authenticated(deps, ['admin']),
    schema: {
      tags: ['tools'],
      summary: 'Register (or replace) a catalog source from an OpenAPI document or an MCP tools/list result',
      description: 'OpenAPI: GET/HEAD/OPTIONS/TRACE are `read`; POST/PUT/PATCH `write`; DELETE `write` and `destructive`. MCP: `readOnlyHint: true` is `read`; otherwise `write` and, unless `destructiveHint: false`, `destructive`; `openWorldHint: true` adds `external`. At most 1000 entries per source, 100 sources and 10000 entries per tenant. 201 when the source is new, 200 when replaced or unchanged.',
      body: RegisterCatalogBody,
      response: { 200: RegisterAnswer, 201: RegisterAnswer, ...problems },
    },
  }, async (req, reply) => {
    const p = principalOf(req);
    const out = await registerCatalogSource(deps.db, { tenantId: p.tenant_id, principalId: p.id }, req.body, new Date());
    if (out.changed) deps.catalogs.invalidate(p.tenant_id);
    void reply.status(out.created ? 201 : 200);
    return { version: out.catalog.version, hash: out.catalog.hash, changed: out.changed, source: summary(out.catalog, out.source.source_id), entries: out.source.entries };
  });

  r.get('/v1/tools/catalog', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['tools'], summary: "The tenant's tool catalog: version, hash, sources and every entry", querystring: z.strictObject({}), response: { 200: CatalogAnswer, ...problems } },
  }, async (req) => answer(await loadCatalog(deps.db, principalOf(req).tenant_id)));

  r.get('/v1/tools/catalog/lookup', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['tools'], summary: 'The risk tags the catalog adds to a request for this tool and operation', querystring: LookupQuery, response: { 200: z.strictObject({ tool: z.string(), operation: z.string().nullable(), risk_tags: z.array(CatalogRiskTag), version: z.number().int(), hash: Sha }), ...problems } },
  }, async (req) => {
    const c = await loadCatalog(deps.db, principalOf(req).tenant_id);
    const action = { tool: req.query.tool, ...(req.query.operation === undefined ? {} : { operation: req.query.operation }) };
    return { tool: req.query.tool, operation: req.query.operation ?? null, risk_tags: catalogRiskTags(catalogOf(c.sources), { action }), version: c.version, hash: c.hash };
  });

  r.get('/v1/tools/catalog/:source', {
    onRequest: authenticated(deps, []),
    schema: { tags: ['tools'], summary: 'One catalog source and its entries', params: SourceParams, querystring: z.strictObject({}), response: { 200: RegisterAnswer.omit({ changed: true }), ...problems } },
  }, async (req) => {
    const c = await loadCatalog(deps.db, principalOf(req).tenant_id);
    const s = c.sources.find((x) => x.source_id === req.params.source);
    if (!s) throw new CountersignError('not_found', `no catalog source ${req.params.source}`);
    return { version: c.version, hash: c.hash, source: summary(c, s.source_id), entries: s.entries };
  });

  r.delete('/v1/tools/catalog/:source', {
    onRequest: authenticated(deps, ['admin']),
    schema: { tags: ['tools'], summary: 'Remove a catalog source: its tools are no longer tagged', params: SourceParams, response: { 200: CatalogAnswer, ...problems } },
  }, async (req) => {
    const p = principalOf(req);
    const c = await removeCatalogSource(deps.db, { tenantId: p.tenant_id, principalId: p.id }, req.params.source, new Date());
    deps.catalogs.invalidate(p.tenant_id);
    return answer(c);
  });
}
