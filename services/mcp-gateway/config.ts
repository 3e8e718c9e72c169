import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * The gateway's one typed configuration. The file keeps the `mcpServers` shape MCP hosts already use (so a
 * host's config moves behind the gateway unchanged) with Countersign's own settings beside it under
 * `countersign`; flags override the file. Secrets come only from the environment, never the file.
 */

/** An upstream's name is its `action.tool`, its catalog tool and part of exposed tool names: no `__`, no spaces. */
export const UpstreamName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'an upstream name is 1-64 letters, digits, . _ - (starting with a letter or digit)')
  .refine((v) => !v.includes('__'), 'an upstream name may not contain "__" (it separates upstream and tool in exposed names)');

const StdioUpstream = z.strictObject({
  command: z.string().min(1).describe('Program to spawn; it speaks MCP over its stdin/stdout.'),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).default({}).describe("Added to a minimal safe environment (PATH, HOME...); the gateway's own variables, its API key among them, are never passed."),
  cwd: z.string().optional(),
  type: z.literal('stdio').optional(),
});
const HttpUpstream = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: 'url must be an http(s) URL' }).describe('Streamable HTTP endpoint of the upstream.'),
  headers: z.record(z.string(), z.string()).default({}).describe('Sent with every request (e.g. the upstream\'s own Authorization).'),
  type: z.enum(['http', 'streamable-http']).optional(),
});
export const UpstreamConfig = z.union([StdioUpstream, HttpUpstream], { error: 'an upstream has either `command` (stdio) or `url` (Streamable HTTP)' });
export type UpstreamConfig = z.infer<typeof UpstreamConfig>;

export const GatewaySettings = z.strictObject({
  agent: z.string().min(1).max(200).regex(/^[A-Za-z0-9._:@-]+$/, 'agent id may contain letters, digits and . _ : @ -').describe('agent.id of every decision request (the API key must be allowed to act for it).'),
  environment: z.string().min(1).max(200).optional().describe('context.environment of every decision request. Default: none.'),
  max_hold_sec: z.number().int().min(1).max(86_400).default(600).describe('Longest a REQUIRE_APPROVAL call is held before the client is told to retry. Default 600.'),
  progress_interval_sec: z.number().min(0.05).max(60).default(10).describe('Progress notifications while held (when the client sent a progressToken). Default 10.'),
  hide_denied: z.boolean().default(false).describe('Leave out of tools/list the tools the active policies DENY with empty arguments. Default false.'),
  tool_names: z.enum(['on-collision', 'prefixed']).default('on-collision').describe('on-collision: a tool keeps its name unless two upstreams have it, then both are `upstream__tool`; prefixed: always `upstream__tool`.'),
  idempotency_window_sec: z.number().int().min(1).max(7 * 86_400).default(3600).describe('Identical calls (agent, upstream, tool, arguments) without a client key name the same decision within one window. Default 3600.'),
  upstream_timeout_sec: z.number().int().min(1).max(86_400).default(300).describe('Timeout of a forwarded call when the decision sets no max_runtime_sec. Default 300.'),
  max_outcome_bytes: z.number().int().min(256).max(256 * 1024).default(16 * 1024).describe('Largest outcome output reported to the run; larger results are reported as a digest and a prefix. Default 16384.'),
  output_rules: z.enum(['auto', 'enforce', 'report']).default('auto').describe('enforce: every result goes back only after the run checked it against the output rules (withheld on a violation); report: results go back at once and outcomes are reported after (violations recorded, never withheld); auto: enforce for the tools an output rule of the tenant\'s active policies may apply to, report for the others. Default auto.'),
  policy_refresh_sec: z.number().int().min(1).max(3600).default(30).describe('How often auto re-reads the active policies for output rules. Default 30.'),
  register_catalog: z.boolean().default(true).describe("Register each upstream's tools/list in the tenant's tool catalog (needs COUNTERSIGN_CATALOG_API_KEY, an admin key). Default true."),
  api_timeout_sec: z.number().min(1).max(120).default(30).describe('Per-request timeout towards the Countersign API (long polls add their wait). Default 30.'),
});
export type GatewaySettings = z.infer<typeof GatewaySettings>;

export const GatewayFile = z.strictObject({
  // Names are checked one by one so an error says which name and why (a record key schema only says "invalid key").
  mcpServers: z.record(z.string(), UpstreamConfig).superRefine((servers, ctx) => {
    if (Object.keys(servers).length === 0) ctx.addIssue({ code: 'custom', message: 'name at least one upstream server' });
    for (const name of Object.keys(servers)) {
      const r = UpstreamName.safeParse(name);
      if (!r.success) ctx.addIssue({ code: 'custom', path: [name], message: r.error.issues[0]!.message });
    }
  }),
  countersign: GatewaySettings.partial().default({}),
});

/** The environment the gateway reads (and nothing else reads process.env). */
export const GatewayEnv = z.object({
  COUNTERSIGN_URL: z.url({ error: 'COUNTERSIGN_URL must be the API URL' }),
  COUNTERSIGN_API_KEY: z.string().min(1, 'COUNTERSIGN_API_KEY (an agent key) is required'),
  COUNTERSIGN_CATALOG_API_KEY: z.string().min(1).optional(),
  COUNTERSIGN_MCP_TOKEN: z.string().min(16, 'COUNTERSIGN_MCP_TOKEN must be at least 16 characters').optional(),
});
export type GatewayEnv = z.infer<typeof GatewayEnv>;

export type GatewayConfig = {
  upstreams: Record<string, UpstreamConfig>;
  settings: GatewaySettings;
  api: { url: string; key: string; catalogKey: string | undefined };
  http: { host: string; port: number; token: string } | undefined;
};

export type GatewayFlags = Partial<Pick<GatewaySettings, 'agent' | 'environment' | 'max_hold_sec' | 'hide_denied' | 'tool_names'>> & { http?: string };

export class GatewayConfigError extends Error {}

const issues = (e: z.ZodError, prefix: string) => e.issues.map((i) => `${[prefix, ...i.path.map(String)].filter(Boolean).join('.')}: ${i.message}`).join('\n');

export function parseHostPort(value: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65_535)) throw new GatewayConfigError(`--http ${value}: expected HOST:PORT, e.g. 127.0.0.1:8765`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Builds the configuration from the file's JSON, the flags and the environment; every error names its field. */
export function buildGatewayConfig(file: unknown, flags: GatewayFlags, env: Record<string, string | undefined>): GatewayConfig {
  const parsedFile = GatewayFile.safeParse(file);
  if (!parsedFile.success) throw new GatewayConfigError(issues(parsedFile.error, ''));
  const { http, ...overrides } = flags;
  const merged = { ...parsedFile.data.countersign, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };
  const settings = GatewaySettings.safeParse(merged);
  if (!settings.success) throw new GatewayConfigError(issues(settings.error, 'countersign'));
  const e = GatewayEnv.safeParse(env);
  if (!e.success) throw new GatewayConfigError(issues(e.error, ''));
  let httpConfig: GatewayConfig['http'];
  if (http !== undefined) {
    if (!e.data.COUNTERSIGN_MCP_TOKEN) throw new GatewayConfigError('--http needs COUNTERSIGN_MCP_TOKEN: the bearer token clients must send (at least 16 characters)');
    httpConfig = { ...parseHostPort(http), token: e.data.COUNTERSIGN_MCP_TOKEN };
  }
  return {
    upstreams: parsedFile.data.mcpServers,
    settings: settings.data,
    api: { url: e.data.COUNTERSIGN_URL, key: e.data.COUNTERSIGN_API_KEY, catalogKey: e.data.COUNTERSIGN_CATALOG_API_KEY },
    http: httpConfig,
  };
}

export function readGatewayFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new GatewayConfigError(`${file}: cannot read the file`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new GatewayConfigError(`${file}: not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}
