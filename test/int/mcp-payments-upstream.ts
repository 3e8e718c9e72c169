/**
 * A small real MCP server (the official SDK's McpServer over stdio) with payments-like tools, for the gateway
 * tests and bench. Every execution is appended as one JSON line to the file named by PAYMENTS_LOG, so a test
 * can tell exactly what the upstream ran (and that a DENY ran nothing).
 */
import { appendFileSync } from 'node:fs';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const logFile = process.env['PAYMENTS_LOG'];
const executed = (tool: string, args: unknown, meta?: unknown) => {
  if (logFile) appendFileSync(logFile, `${JSON.stringify({ tool, args, meta: meta ?? null, at: new Date().toISOString() })}\n`);
};
const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });

const server = new McpServer({ name: 'payments', version: '1.0.0' });

server.registerTool('refund', {
  description: 'Refund an order',
  inputSchema: { order: z.string(), amount: z.number(), currency: z.string().optional() },
  annotations: { destructiveHint: false, openWorldHint: true },
}, async (args, extra) => {
  executed('refund', args, extra._meta);
  return { ...text(`refunded ${args.amount} ${args.currency ?? 'USD'} on ${args.order}`), structuredContent: { refunded: args.amount, order: args.order } };
});

server.registerTool('get_balance', {
  description: 'Read an account balance',
  inputSchema: { account: z.string() },
  annotations: { readOnlyHint: true },
}, async (args, extra) => {
  executed('get_balance', args, extra._meta);
  return text(`balance of ${args.account}: 100.00`);
});

server.registerTool('close_account', {
  description: 'Close an account for good',
  inputSchema: { account: z.string() },
  annotations: { destructiveHint: true },
}, async (args) => {
  executed('close_account', args);
  return text(`closed ${args.account}`);
});

server.registerTool('export_ledger', {
  description: 'Export the ledger (takes `seconds`)',
  inputSchema: { seconds: z.number(), rows: z.number().optional() },
  annotations: { readOnlyHint: true },
}, async (args, extra) => {
  executed('export_ledger', args);
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, args.seconds * 1000);
    extra.signal.addEventListener('abort', () => { clearTimeout(t); resolve(); });
  });
  if (extra.signal.aborted) executed('export_ledger:cancelled', args);
  return { ...text(`exported ${args.rows ?? 0} rows`), structuredContent: { rows: args.rows ?? 0 } };
});

server.registerTool('fail', {
  description: 'Always fails',
  inputSchema: {},
}, async () => {
  executed('fail', {});
  return { ...text('the ledger is locked'), isError: true };
});

await server.connect(new StdioServerTransport());
