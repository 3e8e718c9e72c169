import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { run, print, record, transport, UsageError } from './remote.ts';

/** Larger files are refused before reading; the API takes at most 1 MiB, so documents are slimmed first. */
const MAX_FILE_BYTES = 32 * 1024 * 1024;
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

type RegisterOptions = { format?: string; tool?: string; source?: string; json?: boolean };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readDocument(file: string): Record<string, unknown> {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw new UsageError(`${file}: cannot read the file`);
  }
  if (size > MAX_FILE_BYTES) throw new UsageError(`${file}: ${size} bytes; at most ${MAX_FILE_BYTES} are read`);
  const text = readFileSync(file, 'utf8');
  let value: unknown;
  try {
    value = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text, { maxAliasCount: 1000 });
  } catch (err) {
    throw new UsageError(`${file}: does not parse as ${/\.json$/i.test(file) ? 'JSON' : 'YAML or JSON'}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  if (!isRecord(value)) throw new UsageError(`${file}: expected an object (an OpenAPI document or an MCP tools/list result)`);
  return value;
}

function detectFormat(doc: Record<string, unknown>): 'openapi' | 'mcp' | null {
  if ('openapi' in doc || 'swagger' in doc) return 'openapi';
  if ('tools' in doc || (doc['jsonrpc'] === '2.0' && isRecord(doc['result']))) return 'mcp';
  return null;
}

/**
 * Only what the catalog reads leaves the machine: the version, and each path's operations with their
 * operationId (OpenAPI); each tool's name and annotations (MCP). A 10 MB OpenAPI document becomes a few
 * kilobytes, and its schemas and examples are never sent. Anything malformed is sent as it is, so the API
 * names the problem with its path.
 */
export function slimDocument(format: 'openapi' | 'mcp', doc: Record<string, unknown>): Record<string, unknown> {
  if (format === 'openapi') {
    if (!isRecord(doc['paths'])) return doc;
    const paths: Record<string, unknown> = {};
    for (const [p, item] of Object.entries(doc['paths'])) {
      if (!isRecord(item)) {
        paths[p] = item;
        continue;
      }
      const slim: Record<string, unknown> = {};
      for (const [k, op] of Object.entries(item)) {
        if (k === '$ref') slim[k] = op;
        else if (METHODS.includes(k)) slim[k] = isRecord(op) ? ('operationId' in op ? { operationId: op['operationId'] } : {}) : op;
      }
      paths[p] = slim;
    }
    return { ...('openapi' in doc ? { openapi: doc['openapi'] } : {}), ...('swagger' in doc ? { swagger: doc['swagger'] } : {}), paths };
  }
  const result = doc['jsonrpc'] === '2.0' && isRecord(doc['result']) ? doc['result'] : doc;
  if (!Array.isArray(result['tools'])) return doc;
  const tools = result['tools'].map((t: unknown) => (isRecord(t) ? { name: t['name'], ...('annotations' in t ? { annotations: t['annotations'] } : {}) } : t));
  return { tools, ...('nextCursor' in result ? { nextCursor: result['nextCursor'] } : {}) };
}

type SourceSummary = { source: string; format: string; tool: string | null; entries: number; registered_by: string | null; registered_at: string | null };
type CatalogAnswer = { version: number; hash: string; sources: SourceSummary[]; entries: Array<{ source_id: string; tool: string; operation?: string; risk_tags: string[] }> };

/** `countersign tools …`: the tenant's tool catalog (risk tags from OpenAPI documents and MCP tool lists). */
export function registerToolCommands(program: Command): void {
  const tools = program.command('tools').description("Your tenant's tool catalog: requests for catalogued tools carry its risk tags.");

  tools
    .command('register <file>')
    .description('Register an OpenAPI document or an MCP tools/list result (JSON or YAML); the same source again replaces it (admins).')
    .option('--format <format>', 'openapi or mcp (default: detected from the file)')
    .option('--tool <name>', 'OpenAPI (required): the tool name agents use. MCP: the server as one tool whose operations are its tools')
    .option('--source <id>', 'id of this registration (default: the tool name)')
    .option('--json', 'print JSON')
    .action((file: string, opts: RegisterOptions) => run(async () => {
      const doc = readDocument(file);
      const format = opts.format ?? detectFormat(doc);
      if (format !== 'openapi' && format !== 'mcp') {
        throw new UsageError(opts.format ? `--format must be openapi or mcp, not ${opts.format}` : `${file}: neither an OpenAPI document (openapi/swagger) nor an MCP tools/list result (tools); give --format`);
      }
      if (format === 'openapi' && !opts.tool) throw new UsageError('an OpenAPI document needs --tool NAME: the tool name agents call it by');
      if (!opts.tool && !opts.source) throw new UsageError('give --source ID (or --tool NAME, the default source id)');
      const body = { format, document: slimDocument(format, doc), ...(opts.tool ? { tool: opts.tool } : {}), ...(opts.source ? { source: opts.source } : {}) };
      const out = await transport().request<{ version: number; hash: string; changed: boolean; source: SourceSummary; entries: Array<{ tool: string; operation?: string; risk_tags: string[] }> }>('POST', '/v1/tools/catalog', body, { retry: false });
      if (opts.json) return print(true, out);
      process.stdout.write(`${out.changed ? 'registered' : 'unchanged'} ${out.source.source} (${format}): ${out.entries.length} entries; catalog version ${out.version} ${out.hash}\n`);
      print(false, out, out.entries.map((e) => ({ ...e, operation: e.operation ?? '*' })), ['tool', 'operation', 'risk_tags']);
    }));

  tools
    .command('list')
    .description('The catalog: every entry and the tags it gives (or the sources, with --sources).')
    .option('--sources', 'list the registered sources instead of the entries')
    .option('--json', 'print JSON')
    .action((opts: { sources?: boolean; json?: boolean }) => run(async () => {
      const c = await transport().request<CatalogAnswer>('GET', '/v1/tools/catalog');
      if (opts.json) return print(true, c);
      process.stderr.write(`catalog version ${c.version} ${c.hash}\n`);
      if (opts.sources) return print(false, c, c.sources, ['source', 'format', 'tool', 'entries', 'registered_by', 'registered_at']);
      print(false, c, c.entries.map((e) => ({ ...e, operation: e.operation ?? '*' })), ['source_id', 'tool', 'operation', 'risk_tags']);
    }));

  tools
    .command('lookup <tool> [operation]')
    .description('The risk tags the catalog adds to a request for this tool and operation.')
    .option('--json', 'print JSON')
    .action((tool: string, operation: string | undefined, opts: { json?: boolean }) => run(async () => {
      const out = await transport().request<Record<string, unknown>>('GET', '/v1/tools/catalog/lookup', undefined, { query: { tool, operation } });
      record(opts.json, out);
    }));

  tools
    .command('remove <source>')
    .description('Remove a registered source: its tools are no longer tagged (admins).')
    .option('--json', 'print JSON')
    .action((source: string, opts: { json?: boolean }) => run(async () => {
      const c = await transport().request<CatalogAnswer>('DELETE', `/v1/tools/catalog/${encodeURIComponent(source)}`, undefined, { retry: false });
      if (opts.json) return print(true, c);
      process.stdout.write(`removed ${source}; catalog version ${c.version} ${c.hash}\n`);
    }));
}
