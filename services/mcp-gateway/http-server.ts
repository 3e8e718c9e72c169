import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Gateway } from './gateway.ts';
import type { Logger } from './governed-call.ts';

export const MCP_PATH = '/mcp';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time check of `Authorization: Bearer <token>` (both sides hashed first, so lengths never leak). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return timingSafeEqual(digest(m?.[1] ?? ''), digest(token)) && m !== null;
}

function jsonRpcError(res: ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } }));
}

/**
 * Streamable HTTP at `http://HOST:PORT/mcp`: every request must carry the bearer token (401 otherwise, before
 * the body is read); each client session (`Mcp-Session-Id`) gets its own transport and MCP server in front of
 * the shared upstreams. Malformed JSON-RPC is answered by the SDK's transport with protocol errors.
 */
export async function serveHttp(gateway: Gateway, opts: { host: string; port: number; token: string }, log: Logger): Promise<{ server: HttpServer; url: string; close: () => Promise<void> }> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://gateway').pathname;
    if (path !== MCP_PATH) return jsonRpcError(res, 404, -32601, `not found: the MCP endpoint is ${MCP_PATH}`);
    if (!bearerMatches(req.headers.authorization, opts.token)) {
      req.resume();
      return jsonRpcError(res, 401, -32001, 'Unauthorized: send Authorization: Bearer <the gateway token>', { 'www-authenticate': 'Bearer realm="countersign-mcp-gateway"' });
    }
    const sessionId = req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const t = sessions.get(sessionId);
      if (!t) return jsonRpcError(res, 404, -32001, 'Session not found: initialize a new session');
      return t.handleRequest(req, res);
    }
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => { sessions.set(id, transport); },
    });
    transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
    await gateway.connect(transport);
    await transport.handleRequest(req, res);
    // A request without a session that did not initialize one (the transport refused it) leaves nothing behind.
    if (transport.sessionId === undefined) await transport.close();
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log(`http: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) jsonRpcError(res, 500, -32603, 'Internal error');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address() as { address: string; port: number };
  const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `http://${host}:${addr.port}${MCP_PATH}`,
    close: async () => {
      await Promise.all([...sessions.values()].map((t) => t.close().catch(() => undefined)));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
