import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { randomUUID } from 'node:crypto';
import { trace } from '@opentelemetry/api';
import type { Client } from '@temporalio/client';
import type { Config } from '../config.ts';
import { CountersignError } from '../errors.ts';
import type { Db } from '../events/db.ts';
import { isConnectionError } from '../events/db.ts';
import { authenticate, type Principal, type Role } from '../identity/principals.ts';
import type { ActivePolicies } from '../decisions/active-policies.ts';
import { BODY_LIMIT_BYTES, checkJsonBounds } from './json-bounds.ts';
import { toProblem } from './problem.ts';
import { registerDecisionRoutes } from './routes/decisions.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerReceiptRoutes } from './routes/receipts.ts';
import { registerApiKeyRoutes } from './routes/api-keys.ts';
import { registerDecisionListRoute } from './routes/decision-list.ts';
import { registerPrincipalRoutes } from './routes/principals.ts';
import { registerTenantRoutes } from './routes/tenants.ts';
import { registerPolicyRoutes } from './routes/policies.ts';
import { registerChannelRoutes } from './routes/channels.ts';
import { registerToolCatalogRoutes } from './routes/tool-catalog.ts';
import { registerAuditRoutes } from './routes/audit.ts';
import { registerConsoleRoutes } from './routes/console.ts';
import { registerDelegationRoutes } from './routes/delegations.ts';
import { registerApprovalStreamRoute } from './routes/approval-stream.ts';
import { sessionPrincipal } from '../console/session-auth.ts';
import { ApiKeyCache } from '../identity/key-cache.ts';
import { ToolCatalogs } from '../catalog/catalog-cache.ts';
import { createLogger, createPinoLogger } from '../logger.ts';
import type { Resolver } from '../callbacks/callback-target.ts';
import { registerMetrics } from './metrics.ts';
import { approvalsWaiting } from '../decisions/approvals-waiting.ts';
import { registerRateLimits } from './rate-limits.ts';

export type ApiDeps = {
  config: Config; db: Db; temporal: Client; policies: ActivePolicies; catalogs?: ToolCatalogs; keys?: ApiKeyCache;
  /** Resolves callback hosts (the system resolver unless a test brings one). */
  callbackResolver?: Resolver;
};
export type Api = FastifyInstance;

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    /** Every route as registered (method, URL pattern), HEAD excepted: the bad-input matrix covers each. */
    routeTable: Array<{ method: string; url: string }>;
  }
}

export async function buildServer(deps: ApiDeps): Promise<FastifyInstance> {
  const loggerInstance: FastifyBaseLogger = createPinoLogger('api', deps.config.COUNTERSIGN_LOG_LEVEL, process.stdout);
  const app = Fastify({
    bodyLimit: BODY_LIMIT_BYTES,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : `req_${randomUUID()}`;
    },
    // The one logger (services/logger.ts): requests by method and redacted URL, never bodies or headers, every
    // line scrubbed of keys and tokens before it is written.
    loggerInstance,
    ajv: undefined,
    // Which address a request comes from (rate limits of anonymous requests and failed authentications).
    trustProxy: trustProxyOption(deps.config.COUNTERSIGN_TRUST_PROXY),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('principal', null);
  const routeTable: Array<{ method: string; url: string }> = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') routeTable.push({ method, url: route.url });
  });

  // Oversized bodies are refused first, before authentication or parsing does any work.
  app.addHook('onRequest', async (req) => {
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > BODY_LIMIT_BYTES) throw new CountersignError('payload_too_large', `body is ${length} bytes; the limit is ${BODY_LIMIT_BYTES}`);
  });

  // API keys, cached for every authenticated request (dropped on any key or principal change, migration 0012).
  const keys = deps.keys ?? new ApiKeyCache(deps.config.DATABASE_URL, createLogger('api', deps.config.COUNTERSIGN_LOG_LEVEL));
  if (!deps.keys) {
    app.addHook('onReady', () => keys.start());
    app.addHook('onClose', () => keys.stop());
  }

  // Then the rate limits: by client address before authentication looks anything up, by principal after.
  // Shared through Postgres by every API process on this database, spent from permits leased in small blocks.
  let lastSharedError = 0;
  const limits = registerRateLimits(app, {
    max: deps.config.COUNTERSIGN_RATE_LIMIT,
    windowMs: deps.config.COUNTERSIGN_RATE_WINDOW_MS,
    knowsKey: (prefix) => keys.knows(prefix),
    db: deps.db,
    onSharedError: (err) => {
      // Once a window at most: a database that is down says so on every request already.
      if (Date.now() - lastSharedError < deps.config.COUNTERSIGN_RATE_WINDOW_MS) return;
      lastSharedError = Date.now();
      app.log.warn({ err }, 'rate limits counted in this process only: Postgres did not answer');
    },
  });

  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  // The request's span (when the API exports traces) is named by its route pattern, never the raw URL.
  app.addHook('onRequest', async (req) => {
    const span = trace.getActiveSpan();
    if (span && req.routeOptions.url) {
      span.updateName(`${req.method} ${req.routeOptions.url}`);
      span.setAttribute('http.route', req.routeOptions.url);
    }
  });
  registerMetrics(app, { approvalsWaiting: () => approvalsWaiting(deps.db) });

  // Bound the parsed body before validation walks it.
  app.addHook('preValidation', async (req) => {
    if (req.body !== undefined) checkJsonBounds(req.body);
  });

  app.setErrorHandler(async (thrown, req, reply) => {
    const err = await limits.afterError(req, reply, thrown);
    const problem = toProblem(isConnectionError(err) ? CountersignError.dependency('postgres', err) : err, req.id);
    if (problem.status >= 500) req.log.error({ err, code: problem.code }, 'request failed');
    // Unavailable for now (a dependency, a run a worker is recovering): worth trying again soon.
    if (problem.status === 503 && !reply.hasHeader('retry-after')) void reply.header('retry-after', '1');
    return reply.status(problem.status).type('application/problem+json').send(problem);
  });
  app.setNotFoundHandler((req, reply) => {
    const problem = toProblem(new CountersignError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`), req.id);
    void reply.status(404).type('application/problem+json').send(problem);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Countersign API', version: '1', description: 'Policy decisions and human approvals for AI agent tool calls.' },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'API key: cs_<prefix>_<secret>' } } },
      security: [{ apiKey: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  // The tenants' tool catalogs, cached for the decision path: made here unless the caller brings one.
  const catalogs = deps.catalogs ?? new ToolCatalogs(deps.db, deps.config.DATABASE_URL, createLogger('api', deps.config.COUNTERSIGN_LOG_LEVEL));
  if (!deps.catalogs) {
    app.addHook('onReady', () => catalogs.start());
    app.addHook('onClose', () => catalogs.stop());
  }
  deps = { ...deps, catalogs, keys };

  registerHealthRoutes(app, deps);
  registerDecisionRoutes(app, deps);
  registerReceiptRoutes(app, deps);
  registerDecisionListRoute(app, deps);
  registerTenantRoutes(app, deps);
  registerPrincipalRoutes(app, deps);
  registerApiKeyRoutes(app, deps);
  registerPolicyRoutes(app, deps);
  registerChannelRoutes(app, deps);
  registerToolCatalogRoutes(app, { ...deps, catalogs });
  registerAuditRoutes(app, deps);
  registerConsoleRoutes(app, deps);
  registerDelegationRoutes(app, deps);
  registerApprovalStreamRoute(app, deps);
  return app;
}

/**
 * Route hook (onRequest, so it runs before the body is parsed or validated): authenticates the bearer key
 * and checks a role. Unknown, revoked and expired keys all look the same: 401.
 */
export function authenticated(deps: ApiDeps, roles: Role[]) {
  return async (req: FastifyRequest): Promise<void> => {
    await requirePrincipal(deps, req, roles);
  };
}

/** Route hook: a platform admin's key (to create and list tenants). */
export function platformAdmin(deps: ApiDeps) {
  return async (req: FastifyRequest): Promise<void> => {
    const principal = await requirePrincipal(deps, req, []);
    if (!principal.platform_admin) throw new CountersignError('forbidden', 'requires a platform admin');
  };
}

/** COUNTERSIGN_TRUST_PROXY as Fastify takes it: a number of hops as a function of the hop (what proxy-addr makes of a number). */
export function trustProxyOption(setting: boolean | number | string[]): boolean | string[] | ((address: string, hop: number) => boolean) {
  return typeof setting === 'number' ? (_address, hop) => hop < setting : setting;
}

/** The principal an `authenticated` hook put on the request. */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new CountersignError('unauthorized', 'missing Authorization: Bearer <api key>');
  return req.principal;
}

export async function requirePrincipal(deps: ApiDeps, req: FastifyRequest, roles: Role[]): Promise<Principal> {
  const header = req.headers.authorization;
  const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : null;
  let principal: Principal | null;
  try {
    // Without a key, the console's session cookie (which also needs its CSRF token on any change).
    principal = token ? await authenticate(deps.db, token, new Date(), deps.keys?.lookup) : await sessionPrincipal(deps, req);
  } catch (err) {
    throw isConnectionError(err) ? CountersignError.dependency('postgres', err) : err;
  }
  if (!principal) throw new CountersignError('unauthorized', 'invalid, revoked or expired API key');
  if (roles.length && !roles.some((r) => principal.roles.includes(r))) {
    throw new CountersignError('forbidden', `requires one of the roles: ${roles.join(', ')}`);
  }
  req.principal = principal;
  // Who asked, in every later log line of this request: ids and the public key prefix, never the key.
  req.log = req.log.child({ principal_id: principal.id, tenant_id: principal.tenant_id, key_prefix: principal.key_prefix });
  return principal;
}
