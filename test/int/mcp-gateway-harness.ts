import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ROOT } from './harness.ts';

/** Shared setup of the MCP gateway's integration tests and bench: config files, a gateway client, the upstream's log. */

export const PAYMENTS_SERVER = path.join(ROOT, 'test/int/mcp-payments-upstream.ts');
export const EVERYTHING_SERVER = path.join(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
export const CLI = path.join(ROOT, 'services/cli/countersign.mjs');

export type Executed = { tool: string; args: Record<string, unknown>; meta: Record<string, unknown> | null };

export function gatewayFiles(settings: Record<string, unknown>, opts: { everything?: boolean } = {}): { dir: string; config: string; log: string; executed: () => Executed[] } {
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-mcp-'));
  const log = path.join(dir, 'payments.log');
  const config = path.join(dir, 'gateway.json');
  const mcpServers: Record<string, unknown> = {
    payments: { command: process.execPath, args: ['--import', 'tsx', PAYMENTS_SERVER], env: { PAYMENTS_LOG: log } },
  };
  if (opts.everything) mcpServers['everything'] = { command: process.execPath, args: [EVERYTHING_SERVER, 'stdio'] };
  writeFileSync(config, JSON.stringify({ mcpServers, countersign: settings }, null, 2));
  return {
    dir,
    config,
    log,
    executed: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Executed) : []),
  };
}

export type GatewayClient = { client: Client; transport: StdioClientTransport; stderr: () => string; close: () => Promise<void> };

/** The official SDK client, spawning `countersign mcp gateway` over stdio as an MCP host would. */
export async function stdioGateway(config: string, env: Record<string, string>): Promise<GatewayClient> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, 'mcp', 'gateway', '--config', config],
    env: { PATH: process.env['PATH'] ?? '', ...env },
    cwd: ROOT,
    stderr: 'pipe',
  });
  let err = '';
  transport.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  const client = new Client({ name: 'gateway-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport, stderr: () => err, close: () => client.close() };
}
