import { createLogger } from '../logger.ts';
import { buildGatewayConfig, readGatewayFile, type GatewayFlags } from './config.ts';
import { Gateway } from './gateway.ts';
import { serveHttp } from './http-server.ts';
import { StrictStdioServerTransport } from './stdio-transport.ts';

/**
 * Runs the gateway until its client goes away (stdio: stdin ends) or it is told to stop (SIGTERM, SIGINT).
 * Everything it says goes to stderr: in stdio mode stdout is the MCP channel.
 */
export async function runGateway(configFile: string, flags: GatewayFlags, env: Record<string, string | undefined> = process.env): Promise<void> {
  // The one logger, on stderr (stdout is the MCP channel in stdio mode).
  const logger = createLogger('mcp-gateway', 'info');
  const log = (line: string) => logger('info', line);
  const config = buildGatewayConfig(readGatewayFile(configFile), flags, env);
  const gateway = await Gateway.start(config, log);
  const tools = [...gateway.upstreams.values()].reduce((n, u) => n + u.tools.length, 0);
  let stopped!: () => void;
  const done = new Promise<void>((resolve) => { stopped = resolve; });
  const stop = () => stopped();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  let closeHttp: (() => Promise<void>) | undefined;
  try {
    if (config.http) {
      const http = await serveHttp(gateway, config.http, log);
      closeHttp = http.close;
      log(`ready: ${gateway.upstreams.size} upstream(s), ${tools} tool(s), Streamable HTTP at ${http.url}`);
    } else {
      const server = await gateway.connect(new StrictStdioServerTransport());
      server.onclose = stop;
      log(`ready: ${gateway.upstreams.size} upstream(s), ${tools} tool(s), stdio`);
    }
    await done;
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    await closeHttp?.();
    await gateway.close();
  }
}
