import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics of one API process: requests by route (the route pattern, never the raw URL, so ids
 * do not explode the label set) and status, their latency, and decisions answered by kind. No tenant,
 * principal or key appears in any label.
 */
declare module 'fastify' {
  interface FastifyInstance {
    /** Counts a channel request refused before it reached any tenant (nothing is written for it). */
    countChannelRefusal: (channel: 'slack' | 'email', reason: 'signature' | 'unknown_link') => void;
    /** The audit replays this process runs (POST /v1/audit/replays): their progress and results. */
    replayMetrics: ReplayMetrics;
  }
}

export type ReplayMetrics = { started: () => { progress: (events: number) => void; done: (result: 'ok' | 'diverged' | 'failed') => void } };

/** Approval rounds waiting for an answer, across every tenant: how many, and how long the oldest has waited. */
export type ApprovalsWaiting = () => Promise<{ waiting: number; oldestSeconds: number }>;

/** Scrapes closer together than this share one count of the waiting approvals (each count is one query). */
const APPROVALS_CACHE_MS = 5_000;

export function registerMetrics(app: FastifyInstance, opts: { approvalsWaiting?: ApprovalsWaiting } = {}): Registry {
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
  const decisionLatency = new Histogram({
    name: 'countersign_decision_request_duration_seconds', help: 'Latency of POST /v1/decisions answered with a decision, by decision (evaluation and the durable start of its run).', labelNames: ['decision'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry],
  });

  let approvals: { at: number; value: Promise<{ waiting: number; oldestSeconds: number }> } | null = null;
  const approvalsNow = () => {
    if (!opts.approvalsWaiting) return Promise.resolve({ waiting: -1, oldestSeconds: -1 });
    if (!approvals || Date.now() - approvals.at > APPROVALS_CACHE_MS) approvals = { at: Date.now(), value: opts.approvalsWaiting().catch(() => ({ waiting: -1, oldestSeconds: -1 })) };
    return approvals.value;
  };
  new Gauge({
    name: 'countersign_approvals_waiting', help: 'Decisions waiting for an approval (or an override) answer, across every tenant; -1 while Postgres does not answer.', registers: [registry],
    async collect() { this.set((await approvalsNow()).waiting); },
  });
  new Gauge({
    name: 'countersign_approvals_oldest_wait_seconds', help: 'How long the oldest decision still waiting for an answer has waited since it was asked for (0 when none waits; -1 while Postgres does not answer).', registers: [registry],
    async collect() { this.set((await approvalsNow()).oldestSeconds); },
  });

  const replaysRunning = new Gauge({ name: 'countersign_audit_replays_running', help: 'Audit replays (POST /v1/audit/replays) running in this process.', registers: [registry] });
  const replayEvents = new Counter({ name: 'countersign_audit_replay_events_total', help: 'Events read and checked by this process\'s audit replays (its rate is the replay speed in events/s).', registers: [registry] });
  const replays = new Counter({ name: 'countersign_audit_replays_total', help: 'Audit replays finished by this process, by result: ok, diverged (a divergence found), failed (could not finish).', labelNames: ['result'], registers: [registry] });
  const replayRate = new Gauge({ name: 'countersign_audit_replay_last_events_per_second', help: 'Events per second of the last audit replay this process finished.', registers: [registry] });
  app.decorate('replayMetrics', {
    started: () => {
      replaysRunning.inc();
      const t0 = performance.now();
      let seen = 0;
      return {
        progress: (events: number) => {
          if (events > seen) replayEvents.inc(events - seen);
          seen = Math.max(seen, events);
        },
        done: (result: 'ok' | 'diverged' | 'failed') => {
          replaysRunning.dec();
          replays.inc({ result });
          const seconds = (performance.now() - t0) / 1000;
          if (result !== 'failed' && seconds > 0) replayRate.set(seen / seconds);
        },
      };
    },
  } satisfies ReplayMetrics);

  // The decision an answer carries, for the latency by decision (read once, in onSend, where the body is).
  const answered = new WeakMap<object, string>();
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.method === 'POST' && req.routeOptions.url === '/v1/decisions' && reply.statusCode === 200 && typeof payload === 'string') {
      const decision = /"decision":"([A-Z_]+)"/.exec(payload)?.[1];
      if (decision) {
        decisions.inc({ decision });
        answered.set(req, decision);
      }
    }
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    const decision = answered.get(req);
    if (decision) decisionLatency.observe({ decision }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { schema: { hide: true }, config: { rateLimit: false } }, async (_req, reply) => {
    void reply.type(registry.contentType);
    return registry.metrics();
  });
  return registry;
}
