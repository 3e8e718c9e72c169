import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Notification, Prompt, Resource, ResourceTemplate, ServerCapabilities, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { UpstreamConfig } from './config.ts';

export const GATEWAY_INFO = { name: 'countersign-mcp-gateway', version: '0.1.0' };

/** Every page of a paginated list, merged (a catalog registration needs the whole tools array). */
async function allPages<T>(fetchPage: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor?: string | undefined }>): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 100; page++) {
    const r = await fetchPage(cursor);
    out.push(...r.items);
    if (!r.nextCursor) break;
    cursor = r.nextCursor;
  }
  return out;
}

/**
 * One upstream MCP server: spawned over stdio (with only a minimal safe environment plus the configured
 * `env`, so the gateway's API key never reaches it) or reached over Streamable HTTP.
 */
export class Upstream {
  tools: Tool[] = [];
  private constructor(readonly name: string, readonly client: Client) {}

  static async connect(name: string, config: UpstreamConfig, onNotification: (upstream: string, n: Notification) => void): Promise<Upstream> {
    const client = new Client(GATEWAY_INFO, { capabilities: {} });
    client.fallbackNotificationHandler = async (n) => onNotification(name, n);
    const transport = 'command' in config
      ? new StdioClientTransport({ command: config.command, args: config.args, env: config.env, ...(config.cwd ? { cwd: config.cwd } : {}), stderr: 'inherit' })
      : new StreamableHTTPClientTransport(new URL(config.url), { requestInit: { headers: config.headers } });
    try {
      await client.connect(transport);
    } catch (err) {
      throw new Error(`upstream ${name}: could not connect (${err instanceof Error ? err.message : String(err)})`, { cause: err });
    }
    const u = new Upstream(name, client);
    await u.refreshTools();
    return u;
  }

  get capabilities(): ServerCapabilities {
    return this.client.getServerCapabilities() ?? {};
  }

  async refreshTools(): Promise<Tool[]> {
    this.tools = this.capabilities.tools ? await allPages(async (cursor) => { const r = await this.client.listTools(cursor ? { cursor } : {}); return { items: r.tools, nextCursor: r.nextCursor }; }) : [];
    return this.tools;
  }

  async listPrompts(): Promise<Prompt[]> {
    return this.capabilities.prompts ? allPages(async (cursor) => { const r = await this.client.listPrompts(cursor ? { cursor } : {}); return { items: r.prompts, nextCursor: r.nextCursor }; }) : [];
  }

  async listResources(): Promise<Resource[]> {
    return this.capabilities.resources ? allPages(async (cursor) => { const r = await this.client.listResources(cursor ? { cursor } : {}); return { items: r.resources, nextCursor: r.nextCursor }; }) : [];
  }

  async listResourceTemplates(): Promise<ResourceTemplate[]> {
    return this.capabilities.resources ? allPages(async (cursor) => { const r = await this.client.listResourceTemplates(cursor ? { cursor } : {}); return { items: r.resourceTemplates, nextCursor: r.nextCursor }; }) : [];
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
  }
}
