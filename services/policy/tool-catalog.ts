import type { DecisionRequest } from '../../schemas/decision.ts';

/**
 * A catalog of registered tools and the risk tags their operations carry, so a request for a known tool
 * is tagged without the agent having to say so. Built from an OpenAPI document (by HTTP method) or an
 * MCP `tools/list` result (by annotations). Plain JSON, so it can be stored and versioned.
 */
export type CatalogEntry = { tool: string; operation?: string; risk_tags: string[]; source: 'openapi' | 'mcp' };
export type ToolCatalog = { entries: CatalogEntry[] };

const METHOD_TAGS: Record<string, string[]> = {
  get: ['read'],
  head: ['read'],
  options: ['read'],
  post: ['write'],
  put: ['write'],
  patch: ['write'],
  // A delete is also a write: rules on `risk_tags: [write]` must catch it.
  delete: ['write', 'destructive'],
};

const MAX_ENTRIES = 10_000;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Registers every operation of an OpenAPI document under `tool`: the operation name is the operationId
 * (or `METHOD /path` when there is none); GET reads, POST/PUT/PATCH write, DELETE is destructive.
 */
export function catalogFromOpenApi(tool: string, openapi: unknown): { ok: true; catalog: ToolCatalog } | { ok: false; error: string } {
  if (!isRecord(openapi) || !isRecord(openapi['paths'])) return { ok: false, error: 'not an OpenAPI document: no paths object' };
  const entries: CatalogEntry[] = [];
  for (const [path, item] of Object.entries(openapi['paths'])) {
    if (!isRecord(item)) continue;
    for (const [method, op] of Object.entries(item)) {
      const tags = METHOD_TAGS[method.toLowerCase()];
      if (tags === undefined || !isRecord(op)) continue;
      const operation = typeof op['operationId'] === 'string' ? op['operationId'] : `${method.toUpperCase()} ${path}`;
      entries.push({ tool, operation, risk_tags: [...tags], source: 'openapi' });
      if (entries.length > MAX_ENTRIES) return { ok: false, error: `more than ${MAX_ENTRIES} operations` };
    }
  }
  return { ok: true, catalog: { entries } };
}

/**
 * Registers the tools of an MCP `tools/list` result. With `server`, each MCP tool is an operation of the
 * tool `server`; without, each MCP tool is a tool of its own. Per the MCP spec, a tool that is not
 * read-only is assumed destructive unless it says `destructiveHint: false`.
 */
export function catalogFromMcp(result: unknown, options: { server?: string } = {}): { ok: true; catalog: ToolCatalog } | { ok: false; error: string } {
  const tools = isRecord(result) ? result['tools'] : undefined;
  if (!Array.isArray(tools)) return { ok: false, error: 'not an MCP tools/list result: no tools array' };
  if (tools.length > MAX_ENTRIES) return { ok: false, error: `more than ${MAX_ENTRIES} tools` };
  const entries: CatalogEntry[] = [];
  for (const t of tools) {
    if (!isRecord(t) || typeof t['name'] !== 'string') return { ok: false, error: 'every MCP tool needs a name' };
    const ann = isRecord(t['annotations']) ? t['annotations'] : {};
    const readOnly = ann['readOnlyHint'] === true;
    const tags = readOnly ? ['read'] : ann['destructiveHint'] === false ? ['write'] : ['write', 'destructive'];
    if (ann['openWorldHint'] === true) tags.push('external');
    const entry: CatalogEntry = options.server === undefined ? { tool: t['name'], risk_tags: tags, source: 'mcp' } : { tool: options.server, operation: t['name'], risk_tags: tags, source: 'mcp' };
    entries.push(entry);
  }
  return { ok: true, catalog: { entries } };
}

export function mergeCatalogs(...catalogs: ToolCatalog[]): ToolCatalog {
  return { entries: catalogs.flatMap((c) => c.entries) };
}

/**
 * The request with the catalog's risk tags added to `context.risk_tags` (a union; the agent's own tags
 * stay). An entry without an operation applies to every operation of its tool. Pure: returns a new request.
 */
export function enrichRequest(catalog: ToolCatalog, request: DecisionRequest): DecisionRequest {
  const { tool, operation } = request.action;
  const add = catalog.entries.filter((e) => e.tool === tool && (e.operation === undefined || e.operation === operation)).flatMap((e) => e.risk_tags);
  if (add.length === 0) return request;
  const context = (request.context ?? {}) as Record<string, unknown>;
  const have = Array.isArray(context['risk_tags']) ? (context['risk_tags'] as string[]) : [];
  return { ...request, context: { ...context, risk_tags: [...new Set([...have, ...add])] } };
}
