import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema, CompleteRequestSchema, ErrorCode, GetPromptRequestSchema, ListPromptsRequestSchema, ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema, ListToolsRequestSchema, McpError, ReadResourceRequestSchema, SetLevelRequestSchema, SubscribeRequestSchema,
  UnsubscribeRequestSchema, type CallToolResult, type Notification, type Prompt, type ServerCapabilities, type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Transport as McpTransport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { DecisionResult } from '../../schemas/decision.ts';
import { Transport } from '../sdk/transport.ts';
import { registerUpstreamCatalog } from './catalog-registration.ts';
import type { GatewayConfig } from './config.ts';
import { CLIENT_KEY, CLIENT_KEY_META, decisionRequestFor } from './decision-request.ts';
import { GovernedCalls, type Logger } from './governed-call.ts';
import { OutputRuleWatch } from './output-rule-watch.ts';
import { ParamsCheckingTransport } from './params-check.ts';
import { refusedRequestResult } from './tool-results.ts';
import { exposeNames, type Route } from './tool-names.ts';
import { GATEWAY_INFO, Upstream } from './upstreams.ts';

/** Notifications an upstream sends that every client session receives as they are. */
const PASSED_NOTIFICATIONS = new Set(['notifications/resources/updated', 'notifications/resources/list_changed', 'notifications/prompts/list_changed', 'notifications/message']);

/**
 * The gateway: one set of upstream connections and one governed-call table, shared by every client session
 * (stdio has one; Streamable HTTP one per `Mcp-Session-Id`). Each session gets its own MCP Server object,
 * as the SDK requires, built by `serverFor`.
 */
export class Gateway {
  private toolRoutes = new Map<string, Route>();
  private exposedTools: Tool[] = [];
  private promptRoutes = new Map<string, Route>();
  private readonly sessions = new Set<Server>();
  private readonly calls: GovernedCalls;
  private readonly api: Transport;
  private readonly outputRules: OutputRuleWatch | undefined;

  private constructor(readonly config: GatewayConfig, readonly upstreams: Map<string, Upstream>, private readonly log: Logger) {
    this.api = new Transport({ url: config.api.url, apiKey: config.api.key, timeoutMs: config.settings.api_timeout_sec * 1000, attempts: 3 });
    const mode = config.settings.output_rules;
    this.outputRules = mode === 'auto' ? new OutputRuleWatch(this.api, config.settings.policy_refresh_sec, log) : undefined;
    this.calls = new GovernedCalls({
      api: this.api, settings: config.settings, log,
      checkOutput: (upstream, tool) => mode === 'enforce' || (mode === 'auto' && this.outputRules!.mayApply(upstream, tool)),
    });
  }

  static async start(config: GatewayConfig, log: Logger): Promise<Gateway> {
    const upstreams = new Map<string, Upstream>();
    // Upstreams may notify before the gateway around them exists; those early notifications need no forwarding.
    const built: { gateway?: Gateway } = {};
    const onNotification = (name: string, n: Notification) => built.gateway?.upstreamNotification(name, n);
    try {
      for (const [name, u] of Object.entries(config.upstreams)) upstreams.set(name, await Upstream.connect(name, u, onNotification));
    } catch (err) {
      await Promise.all([...upstreams.values()].map((u) => u.close()));
      throw err;
    }
    const gateway = new Gateway(config, upstreams, log);
    built.gateway = gateway;
    await gateway.outputRules?.start();
    await gateway.refreshTools();
    for (const u of upstreams.values()) await gateway.registerCatalog(u);
    return gateway;
  }

  async close(): Promise<void> {
    await Promise.all([...this.sessions].map((s) => s.close().catch(() => undefined)));
    this.outputRules?.stop();
    await this.calls.drain();
    await Promise.all([...this.upstreams.values()].map((u) => u.close()));
  }

  /** The union of what the upstreams offer; list_changed is always announced so renames can be pushed. */
  private capabilities(): ServerCapabilities {
    const caps: ServerCapabilities = { tools: { listChanged: true } };
    for (const u of this.upstreams.values()) {
      const c = u.capabilities;
      if (c.prompts) caps.prompts = { listChanged: true };
      if (c.resources) caps.resources = { listChanged: true, subscribe: caps.resources?.subscribe || c.resources.subscribe === true };
      if (c.logging) caps.logging = {};
      if (c.completions) caps.completions = {};
    }
    return caps;
  }

  /** A new MCP server for one client session, connected to its transport. */
  async connect(transport: McpTransport): Promise<Server> {
    const server = new Server(GATEWAY_INFO, {
      capabilities: this.capabilities(),
      instructions: 'Tool calls pass through Countersign: a call may be held for a person to approve, or refused with the reason and the decision id.',
    });
    this.handlers(server);
    server.onclose = () => this.sessions.delete(server);
    this.sessions.add(server);
    await server.connect(new ParamsCheckingTransport(transport));
    return server;
  }

  private handlers(server: Server): void {
    server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: this.exposedTools }));

    server.setRequestHandler(CallToolRequestSchema, async (req, extra): Promise<CallToolResult> => {
      const route = this.toolRoutes.get(req.params.name);
      if (!route) throw new McpError(ErrorCode.InvalidParams, `unknown tool: ${req.params.name}`);
      const upstream = this.upstreams.get(route.upstream)!;
      const { [CLIENT_KEY_META]: clientKey, progressToken, ...meta } = req.params._meta ?? {};
      if (clientKey !== undefined && (typeof clientKey !== 'string' || !CLIENT_KEY.test(clientKey))) {
        return refusedRequestResult(`_meta["${CLIENT_KEY_META}"] must be 1-200 printable ASCII characters without spaces`);
      }
      let sent = 0;
      const progress = progressToken === undefined ? undefined : async (message: string) => {
        sent++;
        await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: sent, message } });
      };
      return this.calls.call(
        { upstream, tool: route.name, args: req.params.arguments ?? {}, clientKey, meta: Object.keys(meta).length ? meta : undefined },
        { signal: extra.signal, progress },
      );
    });

    const caps = this.capabilities();
    if (caps.prompts) this.promptHandlers(server);
    if (caps.resources) this.resourceHandlers(server);
    if (caps.logging) {
      server.setRequestHandler(SetLevelRequestSchema, async (req) => {
        await Promise.all([...this.upstreams.values()].filter((u) => u.capabilities.logging).map((u) => u.client.setLoggingLevel(req.params.level)));
        return {};
      });
    }
    if (caps.completions) this.completionHandler(server);
  }

  private promptHandlers(server: Server): void {
    server.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts: await this.listPrompts() }));
    server.setRequestHandler(GetPromptRequestSchema, async (req) => {
      const route = (this.promptRoutes.size > 0 ? this.promptRoutes : await this.listPrompts().then(() => this.promptRoutes)).get(req.params.name);
      if (!route) throw new McpError(ErrorCode.InvalidParams, `unknown prompt: ${req.params.name}`);
      return this.upstreams.get(route.upstream)!.client.getPrompt({ ...req.params, name: route.name });
    });
  }

  private resourceHandlers(server: Server): void {
    server.setRequestHandler(ListResourcesRequestSchema, async () => ({ resources: (await Promise.all([...this.upstreams.values()].map((u) => u.listResources()))).flat() }));
    server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({ resourceTemplates: (await Promise.all([...this.upstreams.values()].map((u) => u.listResourceTemplates()))).flat() }));
    server.setRequestHandler(ReadResourceRequestSchema, async (req) => this.firstThatAnswers('resources', (u) => u.client.readResource(req.params)));
    server.setRequestHandler(SubscribeRequestSchema, async (req) => this.firstThatAnswers('resources', (u) => u.client.subscribeResource(req.params)));
    server.setRequestHandler(UnsubscribeRequestSchema, async (req) => this.firstThatAnswers('resources', (u) => u.client.unsubscribeResource(req.params)));
  }

  private completionHandler(server: Server): void {
    server.setRequestHandler(CompleteRequestSchema, async (req) => {
      const ref = req.params.ref;
      if (ref.type === 'ref/prompt') {
        const route = this.promptRoutes.get(ref.name);
        if (!route) throw new McpError(ErrorCode.InvalidParams, `unknown prompt: ${ref.name}`);
        return this.upstreams.get(route.upstream)!.client.complete({ ...req.params, ref: { ...ref, name: route.name } });
      }
      return this.firstThatAnswers('completions', (u) => u.client.complete(req.params));
    });
  }

  private async listPrompts(): Promise<Prompt[]> {
    const lists = await Promise.all([...this.upstreams.values()].map(async (u) => ({ upstream: u.name, items: await u.listPrompts() })));
    const { items, routes } = exposeNames<Prompt>(lists, this.config.settings.tool_names);
    this.promptRoutes = routes;
    return items;
  }

  /**
   * Resources are addressed by URI, which names no upstream: the upstreams that offer the capability are
   * asked in configuration order and the first answer counts.
   */
  private async firstThatAnswers<T>(capability: 'resources' | 'completions', ask: (u: Upstream) => Promise<T>): Promise<T> {
    let last: unknown = new McpError(ErrorCode.MethodNotFound, `no upstream offers ${capability}`);
    for (const u of this.upstreams.values()) {
      if (!u.capabilities[capability]) continue;
      try {
        return await ask(u);
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }

  private upstreamNotification(name: string, n: Notification): void {
    if (n.method === 'notifications/tools/list_changed') {
      const u = this.upstreams.get(name);
      if (!u) return;
      void u.refreshTools()
        .then(() => this.refreshTools())
        .then(() => this.registerCatalog(u))
        .then(() => this.broadcast({ method: 'notifications/tools/list_changed' }))
        .catch((err: unknown) => this.log(`upstream ${name}: tools could not be re-listed: ${err instanceof Error ? err.message : String(err)}`));
      return;
    }
    if (PASSED_NOTIFICATIONS.has(n.method)) this.broadcast(n);
  }

  private broadcast(n: Notification): void {
    for (const s of this.sessions) {
      s.notification(n).catch(() => undefined);
    }
  }

  private async refreshTools(): Promise<void> {
    const lists = [...this.upstreams.values()].map((u) => ({ upstream: u.name, items: u.tools }));
    const { items, routes } = exposeNames<Tool>(lists, this.config.settings.tool_names);
    let tools = items;
    if (this.config.settings.hide_denied) {
      const denied = await Promise.all(items.map(async (t) => this.alwaysDenied(routes.get(t.name)!)));
      tools = items.filter((_, i) => !denied[i]);
    }
    this.toolRoutes = routes;
    this.exposedTools = tools;
  }

  /**
   * "Always denied": the active policies DENY the tool with no arguments (POST /v1/policy/simulate, which
   * starts nothing), other than by a condition that could not be evaluated without them. A tool denied only
   * for some arguments stays listed; a failed simulation lists the tool: a listed tool is still decided on
   * every call, and so is a hidden one.
   */
  private async alwaysDenied(route: Route): Promise<boolean> {
    const s = this.config.settings;
    try {
      const request = decisionRequestFor({ agent: s.agent, environment: s.environment, upstream: route.upstream, tool: route.name, args: {} }, 'simulation');
      delete request.idempotency_key;
      const r = await this.api.request<DecisionResult>('POST', '/v1/policy/simulate', { request });
      // A condition that needs an argument cannot be evaluated without one and fails closed: that DENY says
      // nothing about real calls.
      return r.decision === 'DENY' && !/could not be evaluated/.test(r.reason);
    } catch {
      return false;
    }
  }

  private async registerCatalog(u: Upstream): Promise<void> {
    if (!this.config.settings.register_catalog) return;
    await registerUpstreamCatalog({ url: this.config.api.url, key: this.config.api.catalogKey, timeoutMs: this.config.settings.api_timeout_sec * 1000 }, u, this.log);
  }
}
