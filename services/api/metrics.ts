import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics of one API process: requests by route (the route pattern, never the raw URL, so ids
 * do not explode the label set) and status, their latency, and decisions answered by kind. No tenant,
 * principal or key appears in any label.
 */
declare module 'fastify' {
  interface FastifyInstance {
    /** Counts a channel request refused before it reached any tenant (nothing is written for it). */
    countChannelRefusal: (channel: 'slack' | 'email', reason: 'signature' | 'unknown_link') => void;
  }
}

export function registerMetrics(app: FastifyInstance): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'countersign_api_' });
  const requests = new Counter({ name: 'countersign_http_requests_total', help: 'HTTP requests answered, by method, route and status.', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const latency = new Histogram({
    name: 'countersign_http_request_duration_seconds', help: 'HTTP request latency, by method and route.', labelNames: ['method', 'route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120], registers: [registry],
  });
  const decisions = new Counter({ name: 'countersign_decisions_total', help: 'Decisions answered to POST /v1/decisions, by decision.', labelNames: ['decision'], registers: [registry] });
  // Requests a channel refuses before they can be tied to any tenant (a bad Slack signature, an email link
  // that does not exist): counted here rather than written to the database, where a flood of them would go.
  const refusals = new Counter({ name: 'countersign_channel_refusals_total', help: 'Channel requests refused before reaching any tenant, by channel and reason.', labelNames: ['channel', 'reason'], registers: [registry] });
  app.decorate('countChannelRefusal', (channel: 'slack' | 'email', reason: 'signature' | 'unknown_link') => refusals.inc({ channel, reason }));

  app.addHook('onSend', async (req, reply, payload) => {
    if (req.method === 'POST' && req.routeOptions.url === '/v1/decisions' && reply.statusCode === 200 && typeof payload === 'string') {
      const decision = /"decision":"([A-Z_]+)"/.exec(payload)?.[1];
      if (decision) decisions.inc({ decision });
    }
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { schema: { hide: true }, config: { rateLimit: false } }, async (_req, reply) => {
    void reply.type(registry.contentType);
    return registry.metrics();
  });
  return registry;
}
