import { InvalidArgumentError, type Command } from 'commander';
import { GatewayConfigError } from '../../mcp-gateway/config.ts';
import { runGateway } from '../../mcp-gateway/main.ts';
import { EXIT } from '../exit-codes.ts';

const seconds = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a whole number of seconds');
  return n;
};

type GatewayOptions = { config: string; http?: string; agent?: string; environment?: string; maxHold?: number; hideDenied?: boolean; toolNames?: 'on-collision' | 'prefixed' };

export function registerMcpCommands(program: Command): void {
  const mcp = program.command('mcp').description('Govern MCP servers: the MCP gateway');
  mcp
    .command('gateway')
    .description('Serve MCP (stdio, or Streamable HTTP with --http) in front of the upstream servers of an mcpServers config; every tools/call asks Countersign first')
    .requiredOption('--config <file>', 'JSON: { "mcpServers": { NAME: { command, args, env } | { url, headers } }, "countersign": { agent, environment, max_hold_sec, ... } }')
    .option('--http <host:port>', 'serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio (clients send Authorization: Bearer $COUNTERSIGN_MCP_TOKEN)')
    .option('--agent <id>', 'agent.id of the decision requests (overrides countersign.agent)')
    .option('--environment <env>', 'context.environment of the decision requests (overrides countersign.environment)')
    .option('--max-hold <seconds>', 'longest a call waiting for approval is held (overrides countersign.max_hold_sec)', seconds)
    .option('--hide-denied', 'leave out of tools/list the tools the active policies always deny')
    .option('--tool-names <mode>', 'on-collision (default) or prefixed: when tools are named upstream__tool')
    .addHelpText('after', `
Environment: COUNTERSIGN_URL and COUNTERSIGN_API_KEY (an agent key) are required; COUNTERSIGN_CATALOG_API_KEY
(an admin key) registers the upstreams' tools in the tool catalog; COUNTERSIGN_MCP_TOKEN is the bearer token
of --http. Logs go to stderr.`)
    .action(async (o: GatewayOptions) => {
      try {
        await runGateway(o.config, { http: o.http, agent: o.agent, environment: o.environment, max_hold_sec: o.maxHold, hide_denied: o.hideDenied, tool_names: o.toolNames });
      } catch (err) {
        if (!(err instanceof GatewayConfigError)) throw err;
        process.stderr.write(`countersign mcp gateway: ${err.message.split('\n').join('\n  ')}\n`);
        process.exitCode = EXIT.usage;
      }
    });
}
