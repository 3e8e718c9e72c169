import { z } from 'zod';

/**
 * The tool catalog (issue 3): a tenant registers an OpenAPI document or an MCP `tools/list` result, and
 * requests for the tools it names carry risk tags without the agent saying so. Shared by the pure engine
 * (services/policy/tool-catalog.ts), the store (services/catalog/), the API, the events and replay.
 */

const Digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex>');

/** The tags a catalog can derive. `destructive` always comes with `write`. */
export const CATALOG_RISK_TAGS = ['read', 'write', 'destructive', 'external'] as const;
export const CatalogRiskTag = z.enum(CATALOG_RISK_TAGS);
export type CatalogRiskTag = z.infer<typeof CatalogRiskTag>;

/** As in a decision request's action.tool / action.operation (schemas/decision.ts): 1-200 characters. */
export const CatalogToolName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^\s\u0000-\u001f\u007f]+$/, 'a tool name has no spaces or control characters');
export const CatalogOperationName = z
  .string()
  .min(1)
  .max(200, 'an operation name is at most 200 characters (give the operation a shorter operationId)')
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'an operation name has no control characters');

export const CatalogSourceId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'a source id is 1-128 letters, digits, . _ - (starting with a letter or digit)')
  .refine((v) => v !== 'lookup', 'lookup is reserved (GET /v1/tools/catalog/lookup); choose another source id');

export const CatalogFormat = z.enum(['openapi', 'mcp']);
export type CatalogFormat = z.infer<typeof CatalogFormat>;

/** Bounds: one registration, and one tenant's whole catalog (an event must stay well under Kafka's 1 MB). */
export const MAX_ENTRIES_PER_SOURCE = 1_000;
export const MAX_SOURCES_PER_TENANT = 100;
export const MAX_ENTRIES_PER_TENANT = 10_000;

export const CatalogEntry = z.strictObject({
  tool: CatalogToolName,
  operation: CatalogOperationName.optional().describe('Absent: the entry applies to every operation of the tool.'),
  risk_tags: z.array(CatalogRiskTag).min(1).max(CATALOG_RISK_TAGS.length),
  source: CatalogFormat,
});
export type CatalogEntry = z.infer<typeof CatalogEntry>;

/** One registered document, as the catalog keeps it: the derived entries, not the document. */
export const CatalogSource = z.strictObject({
  source_id: CatalogSourceId,
  format: CatalogFormat,
  tool: CatalogToolName.nullable().describe('OpenAPI: the tool its operations belong to. MCP: the server tool, or null (each MCP tool is a tool).'),
  document_digest: Digest.describe('sha256 over the canonical JSON of the registered document.'),
  entries: z.array(CatalogEntry).min(1).max(MAX_ENTRIES_PER_SOURCE),
});
export type CatalogSource = z.infer<typeof CatalogSource>;

// --- events on the tenant's stream `catalog/<tenant>` ---------------------------------------------
export const ToolCatalogRegisteredData = CatalogSource.extend({
  catalog_version: z.number().int().positive().describe('The catalog version this event makes (its stream version).'),
  catalog_hash: Digest.describe('catalogHash() of the whole tenant catalog after this event.'),
  registered_by: z.string(),
});
export const ToolCatalogRemovedData = z.strictObject({
  source_id: CatalogSourceId,
  catalog_version: z.number().int().positive(),
  catalog_hash: Digest,
  removed_by: z.string(),
});

/**
 * What the decision path records in the evaluation's facts (`facts.tool_catalog`) when the tenant has a
 * catalog: which version it consulted and the tags it derived. evaluate() adds these tags to the request's
 * own (never removes any), so replay re-derives the decision from the recorded facts alone, and checks
 * the tags against the catalog version rebuilt from the log.
 */
export const ToolCatalogFact = z.strictObject({
  version: z.number().int().positive(),
  hash: Digest,
  risk_tags: z.array(CatalogRiskTag).max(CATALOG_RISK_TAGS.length),
});
export type ToolCatalogFact = z.infer<typeof ToolCatalogFact>;

// --- the API: POST /v1/tools/catalog -----------------------------------------------------------------
export const RegisterCatalogBody = z
  .strictObject({
    format: CatalogFormat.describe('openapi: an OpenAPI 3.x (or Swagger 2.0) document; mcp: an MCP tools/list result.'),
    tool: CatalogToolName.optional().describe('OpenAPI (required): the tool name agents use; its operations are the operations. MCP (optional): the server as one tool whose operations are the MCP tools; without it each MCP tool is a tool.'),
    source: CatalogSourceId.optional().describe('Id of this registration; registering the same id again replaces it. Default: the tool name.'),
    document: z.record(z.string(), z.unknown()).describe('The OpenAPI document or the tools/list result (a JSON-RPC response is unwrapped).'),
  })
  .superRefine((b, ctx) => {
    if (b.format === 'openapi' && b.tool === undefined) ctx.addIssue({ code: 'custom', path: ['tool'], message: 'an OpenAPI registration needs the tool name agents call it by' });
    if (b.source === undefined && b.tool === undefined) ctx.addIssue({ code: 'custom', path: ['source'], message: 'give a source id (or a tool name, which is the default source id)' });
  });
export type RegisterCatalogBody = z.infer<typeof RegisterCatalogBody>;
