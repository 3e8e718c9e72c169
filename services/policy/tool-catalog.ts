import { z } from 'zod';
import type { DecisionRequest } from '../../schemas/decision.ts';
import {
  CATALOG_RISK_TAGS, CatalogOperationName, CatalogSourceId, CatalogToolName, MAX_ENTRIES_PER_SOURCE,
  type CatalogEntry, type CatalogRiskTag, type CatalogSource, type RegisterCatalogBody, type ToolCatalogFact,
} from '../../schemas/tool-catalog.ts';
import { sha256Digest } from '../receipts/canonical.ts';

/**
 * A catalog of registered tools and the risk tags their operations carry, so a request for a known tool
 * is tagged without the agent having to say so. Built from an OpenAPI document (by HTTP method) or an
 * MCP `tools/list` result (by annotations). Plain JSON, so it is stored in events and versioned; pure.
 */
export type { CatalogEntry, CatalogSource };
export type ToolCatalog = { entries: CatalogEntry[] };
export type CatalogError = { path: string; message: string };
export type CatalogResult = { ok: true; catalog: ToolCatalog } | { ok: false; error: string; errors: CatalogError[] };

const METHOD_TAGS: Record<string, CatalogRiskTag[]> = {
  get: ['read'],
  head: ['read'],
  options: ['read'],
  trace: ['read'],
  post: ['write'],
  put: ['write'],
  patch: ['write'],
  // A delete is also a write: rules on `risk_tags: [write]` must catch it.
  delete: ['write', 'destructive'],
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function failed(errors: CatalogError[]): CatalogResult {
  const shown = errors.slice(0, 50);
  return { ok: false, error: shown.map((e) => `${e.path}: ${e.message}`).join('; '), errors: shown };
}

function zodErrors(prefix: string, issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>): CatalogError[] {
  return issues.map((i) => ({ path: [prefix, ...i.path.map(String)].filter(Boolean).join('.') || '(root)', message: i.message }));
}

const Operation = z.looseObject({ operationId: z.string().min(1, 'operationId is empty').optional() });
const OpenApiDocument = z.looseObject({
  openapi: z.string().regex(/^3\.\d+(\.\d+)?/, 'openapi must name a 3.x version').optional(),
  swagger: z.literal('2.0', 'swagger must be "2.0"').optional(),
  paths: z.record(z.string().regex(/^\//), z.unknown(), {
    error: (iss) => (iss.code === 'invalid_type' ? 'an OpenAPI document needs a paths object' : iss.code === 'invalid_key' ? 'a path starts with /' : undefined),
  }),
}, 'an OpenAPI document must be an object');

/**
 * Registers every operation of an OpenAPI document under `tool`: the operation name is the operationId
 * (or `METHOD /path` when there is none); GET/HEAD/OPTIONS/TRACE read, POST/PUT/PATCH write, DELETE is
 * write and destructive. Every problem is reported with its path (`paths./pets.get.operationId`).
 */
export function catalogFromOpenApi(tool: string, openapi: unknown, prefix = ''): CatalogResult {
  const at = (p: string) => [prefix, p].filter(Boolean).join('.');
  const name = CatalogToolName.safeParse(tool);
  if (!name.success) return failed(zodErrors('tool', name.error.issues));
  const doc = OpenApiDocument.safeParse(openapi);
  if (!doc.success) return failed(zodErrors(prefix, doc.error.issues));
  if (doc.data.openapi === undefined && doc.data.swagger === undefined) return failed([{ path: at('openapi'), message: 'not an OpenAPI document: it has neither `openapi: 3.x` nor `swagger: "2.0"`' }]);
  const errors: CatalogError[] = [];
  const entries: CatalogEntry[] = [];
  const seen = new Map<string, string>();
  for (const [path, item] of Object.entries(doc.data.paths)) {
    const itemPath = at(`paths.${path}`);
    if (!isRecord(item)) {
      errors.push({ path: itemPath, message: 'a path item must be an object' });
      continue;
    }
    if ('$ref' in item) {
      errors.push({ path: `${itemPath}.$ref`, message: 'path item references are not resolved: inline the path item' });
      continue;
    }
    for (const [method, raw] of Object.entries(item)) {
      const tags = METHOD_TAGS[method];
      if (tags === undefined) continue; // parameters, summary, servers, x-…: not operations
      const op = Operation.safeParse(raw);
      if (!op.success || !isRecord(raw)) {
        errors.push(...(op.success ? [{ path: `${itemPath}.${method}`, message: 'an operation must be an object' }] : zodErrors(`${itemPath}.${method}`, op.error.issues)));
        continue;
      }
      const operation = op.data.operationId ?? `${method.toUpperCase()} ${path}`;
      const opName = CatalogOperationName.safeParse(operation);
      if (!opName.success) {
        errors.push(...zodErrors(`${itemPath}.${method}${op.data.operationId === undefined ? '' : '.operationId'}`, opName.error.issues));
        continue;
      }
      const first = seen.get(operation);
      if (first !== undefined) {
        errors.push({ path: `${itemPath}.${method}`, message: `operation ${JSON.stringify(operation)} is also defined at ${first}; operationIds must be unique` });
        continue;
      }
      seen.set(operation, `${itemPath}.${method}`);
      entries.push({ tool: name.data, operation, risk_tags: [...tags], source: 'openapi' });
      if (entries.length > MAX_ENTRIES_PER_SOURCE) return failed([{ path: at('paths'), message: `more than ${MAX_ENTRIES_PER_SOURCE} operations; split the document into several registrations` }]);
    }
  }
  if (errors.length > 0) return failed(errors);
  if (entries.length === 0) return failed([{ path: at('paths'), message: 'the document defines no operations (get, put, post, delete, options, head, patch, trace)' }]);
  return { ok: true, catalog: { entries } };
}

const McpTool = z.looseObject({
  name: CatalogToolName,
  annotations: z
    .looseObject({
      readOnlyHint: z.boolean().optional(),
      destructiveHint: z.boolean().optional(),
      idempotentHint: z.boolean().optional(),
      openWorldHint: z.boolean().optional(),
    })
    .optional(),
});
const McpToolsList = z.looseObject({
  tools: z.array(McpTool, 'an MCP tools/list result needs a tools array').min(1, 'the tools array is empty').max(MAX_ENTRIES_PER_SOURCE, `more than ${MAX_ENTRIES_PER_SOURCE} tools; split them into several registrations`),
  nextCursor: z.string().optional(),
}, 'a tools/list result must be an object with a tools array');

/**
 * Registers the tools of an MCP `tools/list` result (or the JSON-RPC response carrying it). With `server`,
 * each MCP tool is an operation of the tool `server`; without, each MCP tool is a tool of its own. Per the
 * MCP spec a tool that is not read-only is assumed destructive unless it says `destructiveHint: false`;
 * `openWorldHint: true` adds `external`.
 */
export function catalogFromMcp(result: unknown, options: { server?: string } = {}, prefix = ''): CatalogResult {
  const at = (p: string) => [prefix, p].filter(Boolean).join('.');
  let body = result;
  let bodyPrefix = prefix;
  if (isRecord(result) && result['jsonrpc'] === '2.0') {
    if ('error' in result) return failed([{ path: at('error'), message: 'the JSON-RPC response is an error, not a tools/list result' }]);
    body = result['result'];
    bodyPrefix = at('result');
  }
  if (options.server !== undefined) {
    const server = CatalogToolName.safeParse(options.server);
    if (!server.success) return failed(zodErrors('tool', server.error.issues));
  }
  const list = McpToolsList.safeParse(body);
  if (!list.success) return failed(zodErrors(bodyPrefix, list.error.issues));
  if (list.data.nextCursor !== undefined && list.data.nextCursor !== '') {
    return failed([{ path: [bodyPrefix, 'nextCursor'].filter(Boolean).join('.'), message: 'this is one page of a paginated tools/list: merge every page into one tools array' }]);
  }
  const errors: CatalogError[] = [];
  const entries: CatalogEntry[] = [];
  const seen = new Set<string>();
  list.data.tools.forEach((t, i) => {
    if (seen.has(t.name)) {
      errors.push({ path: [bodyPrefix, `tools.${i}.name`].filter(Boolean).join('.'), message: `tool ${JSON.stringify(t.name)} is listed twice` });
      return;
    }
    seen.add(t.name);
    const ann = t.annotations ?? {};
    const tags: CatalogRiskTag[] = ann.readOnlyHint === true ? ['read'] : ann.destructiveHint === false ? ['write'] : ['write', 'destructive'];
    if (ann.openWorldHint === true) tags.push('external');
    entries.push(options.server === undefined ? { tool: t.name, risk_tags: tags, source: 'mcp' } : { tool: options.server, operation: t.name, risk_tags: tags, source: 'mcp' });
  });
  if (errors.length > 0) return failed(errors);
  return { ok: true, catalog: { entries } };
}

export function mergeCatalogs(...catalogs: ToolCatalog[]): ToolCatalog {
  return { entries: catalogs.flatMap((c) => c.entries) };
}

/**
 * A registration (POST /v1/tools/catalog) as the source the catalog keeps: the derived entries and the
 * document's digest. The document itself is not kept (it can be megabytes; the entries are what decides).
 */
export function sourceFromRegistration(body: RegisterCatalogBody): { ok: true; source: CatalogSource } | { ok: false; errors: CatalogError[] } {
  const sourceId = CatalogSourceId.safeParse(body.source ?? body.tool);
  if (!sourceId.success) return { ok: false, errors: zodErrors(body.source === undefined ? 'tool' : 'source', sourceId.error.issues).map((e) => ({ ...e, message: body.source === undefined ? `cannot be the source id (${e.message}); give source` : e.message })) };
  const built = body.format === 'openapi' ? catalogFromOpenApi(body.tool ?? '', body.document, 'document') : catalogFromMcp(body.document, body.tool === undefined ? {} : { server: body.tool }, 'document');
  if (!built.ok) return { ok: false, errors: built.errors };
  return {
    ok: true,
    source: { source_id: sourceId.data, format: body.format, tool: body.tool ?? null, document_digest: sha256Digest(body.document), entries: built.catalog.entries },
  };
}

/** A tenant's catalog as of one version: its sources, ordered by id. */
export type CatalogState = { version: number; hash: string; sources: CatalogSource[] };

/** SHA-256 over the RFC 8785 canonical JSON of the sources (ordered by id): what a decision records. */
export function catalogHash(sources: readonly CatalogSource[]): `sha256:${string}` {
  const ordered = [...sources].sort((a, b) => (a.source_id < b.source_id ? -1 : a.source_id > b.source_id ? 1 : 0));
  return sha256Digest({ format: 'countersign.tool-catalog/1', sources: ordered });
}

export const EMPTY_CATALOG: CatalogState = { version: 0, hash: catalogHash([]), sources: [] };

/** The catalog after one change: a source registered (or replaced), or removed. Pure; used by the store and replay. */
export function applyCatalogChange(state: CatalogState, change: { kind: 'registered'; source: CatalogSource } | { kind: 'removed'; source_id: string }): CatalogState {
  const id = change.kind === 'registered' ? change.source.source_id : change.source_id;
  const sources = state.sources.filter((s) => s.source_id !== id);
  if (change.kind === 'registered') sources.push(change.source);
  sources.sort((a, b) => (a.source_id < b.source_id ? -1 : a.source_id > b.source_id ? 1 : 0));
  return { version: state.version + 1, hash: catalogHash(sources), sources };
}

const catalogs = new WeakMap<readonly CatalogSource[], ToolCatalog>();
/** The entries of every source, as one catalog (the same object for the same sources array, so its index is built once). */
export function catalogOf(sources: readonly CatalogSource[]): ToolCatalog {
  let c = catalogs.get(sources);
  if (c === undefined) {
    c = { entries: sources.flatMap((s) => s.entries) };
    catalogs.set(sources, c);
  }
  return c;
}

// Entries by tool, built once per catalog object (a tenant may register thousands of operations).
const indexes = new WeakMap<ToolCatalog, Map<string, CatalogEntry[]>>();
function indexOf(catalog: ToolCatalog): Map<string, CatalogEntry[]> {
  let index = indexes.get(catalog);
  if (index === undefined) {
    index = new Map();
    for (const e of catalog.entries) {
      const list = index.get(e.tool);
      if (list) list.push(e);
      else index.set(e.tool, [e]);
    }
    indexes.set(catalog, index);
  }
  return index;
}

/**
 * The tags the catalog gives this request's tool and operation, in a fixed order (read, write, destructive,
 * external). An entry without an operation applies to every operation of its tool.
 */
export function catalogRiskTags(catalog: ToolCatalog, request: Pick<DecisionRequest, 'action'>): CatalogRiskTag[] {
  const { tool, operation } = request.action;
  const found = new Set<CatalogRiskTag>();
  for (const e of indexOf(catalog).get(tool) ?? []) {
    if (e.operation === undefined || e.operation === operation) for (const t of e.risk_tags) found.add(t);
  }
  return CATALOG_RISK_TAGS.filter((t) => found.has(t));
}

/** The request with `tags` added to `context.risk_tags`: a union after the agent's own, which all stay. Pure. */
export function withRiskTags(request: DecisionRequest, tags: readonly string[]): DecisionRequest {
  if (tags.length === 0) return request;
  const context = (request.context ?? {}) as Record<string, unknown>;
  const have = Array.isArray(context['risk_tags']) ? (context['risk_tags'] as string[]) : [];
  return { ...request, context: { ...context, risk_tags: [...new Set([...have, ...tags])] } };
}

/** The request with the catalog's risk tags added (a union; the agent's own tags stay). Pure: returns a new request. */
export function enrichRequest(catalog: ToolCatalog, request: DecisionRequest): DecisionRequest {
  return withRiskTags(request, catalogRiskTags(catalog, request));
}

/** What a decision records about the catalog it consulted (facts.tool_catalog). */
export function catalogFact(state: CatalogState, request: Pick<DecisionRequest, 'action'>): ToolCatalogFact {
  return { version: state.version, hash: state.hash, risk_tags: catalogRiskTags(catalogOf(state.sources), request) };
}

/**
 * The tags of a recorded `facts.tool_catalog`, or why it cannot be used (evaluate fails closed on that).
 * Checked by hand, not by zod: it runs on every evaluation.
 */
export function factRiskTags(fact: unknown): { ok: true; tags: readonly string[] } | { ok: false; error: string } {
  if (!isRecord(fact)) return { ok: false, error: 'fact tool_catalog must be an object' };
  const tags = fact['risk_tags'];
  if (!Array.isArray(tags) || tags.length > CATALOG_RISK_TAGS.length || !tags.every((t) => (CATALOG_RISK_TAGS as readonly unknown[]).includes(t))) {
    return { ok: false, error: `fact tool_catalog.risk_tags must be a list of ${CATALOG_RISK_TAGS.join(', ')}` };
  }
  return { ok: true, tags: tags as string[] };
}
