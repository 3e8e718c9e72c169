import { createServer, type Server, type ServerResponse } from 'node:http';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The worker's Prometheus metrics: what an operator watches for someone starting or messaging workflows
 * straight through Temporal. Labels carry the reason's kind only, never a tenant, principal or workflow id
 * (those are in the worker's warning log line).
 */
export type WorkerMetrics = {
  registry: Registry;
  refusedStarts: Counter<'reason'>;
  refusedMessages: Counter<'kind' | 'reason'>;
  finalized: Counter<'decision' | 'via'>;
  timeToFinal: Histogram<'decision' | 'via'>;
};

export function workerMetrics(): WorkerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'countersign_worker_' });
  const refusedStarts = new Counter({
    name: 'countersign_worker_refused_starts_total',
    help: 'Workflow starts (decisions, policy activation reviews) refused before their first write: no valid signature or attestation of the API over the start.',
    labelNames: ['reason'],
    registers: [registry],
  });
  const refusedMessages = new Counter({
    name: 'countersign_worker_refused_messages_total',
    help: 'Messages to decision runs (answers, overrides, outcomes) the worker refused: unsigned or forged (no or a bad attestation of the API), stale, edited arguments not matching their digest, or a principal that no longer exists or is disabled.',
    labelNames: ['kind', 'reason'],
    registers: [registry],
  });
  const finalized = new Counter({
    name: 'countersign_decisions_finalized_total',
    help: 'Decisions made final (DecisionFinalized written), by decision and by what made them final (policy, approval, rejection, expiry, override, override_denied, evaluator).',
    labelNames: ['decision', 'via'],
    registers: [registry],
  });
  const timeToFinal = new Histogram({
    name: 'countersign_decision_time_to_final_seconds',
    help: 'From the request to the final decision, by decision and via: milliseconds for a policy decision, the approvers\' time for an approval.',
    labelNames: ['decision', 'via'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600],
    registers: [registry],
  });
  return { registry, refusedStarts, refusedMessages, finalized, timeToFinal };
}

/** A short, bounded label for a refused message's reason (the full reason is in the run's answer). */
export function messageRefusalKind(reason: string): 'unsigned' | 'bad_attestation' | 'stale' | 'edit_digest' | 'principal' | 'other' {
  if (reason.includes('no attestation')) return 'unsigned';
  if (reason.includes('bad attestation')) return 'bad_attestation';
  if (reason.includes('stale')) return 'stale';
  if (reason.includes('digest')) return 'edit_digest';
  if (reason.includes('principal')) return 'principal';
  return 'other';
}

/** What a process's /readyz reports: each dependency it needs, 'up' or 'down: <why>'. */
export type ReadinessCheck = () => Promise<Record<string, string>>;

/**
 * Serves GET /metrics, GET /healthz (the process is alive: always 200, with `detail()`) and GET /readyz
 * (200 when every dependency `ready()` names is up, else 503 naming those that are down) on host:port;
 * anything else is a 404. Probes of a process that has no HTTP API of its own (worker, publisher).
 */
export async function serveMetrics(registry: Registry, host: string, port: number, probes: { ready?: ReadinessCheck; detail?: () => Record<string, unknown> } = {}): Promise<Server> {
  const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const server = createServer((req, res) => {
    const url = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(404).end();
    } else if (url === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (url === '/healthz') {
      json(res, 200, { status: 'ok', ...probes.detail?.() });
    } else if (url === '/readyz') {
      (probes.ready ?? (async () => ({})))().then(
        (dependencies) => {
          const down = Object.entries(dependencies).filter(([, s]) => s !== 'up').map(([n]) => n);
          json(res, down.length ? 503 : 200, { status: down.length ? 'unavailable' : 'ready', dependencies, ...(down.length ? { down } : {}), ...probes.detail?.() });
        },
        (err: unknown) => json(res, 503, { status: 'unavailable', error: err instanceof Error ? err.message : String(err) }),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

/** A dependency check bounded in time: 'up', or 'down: <why>'. */
export async function probe(ms: number, check: () => Promise<unknown>): Promise<string> {
  let t: NodeJS.Timeout | undefined;
  try {
    await Promise.race([check(), new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms); })]);
    return 'up';
  } catch (err) {
    return `down: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    clearTimeout(t);
  }
}

/** A short, bounded label for a refusal reason (the full reason is in the log line). */
export function refusalKind(reason: string): 'unsigned' | 'bad_signature' | 'unknown_key' | 'malformed' | 'mismatch' {
  if (reason.includes('no signature') || reason.includes('no attestation')) return 'unsigned';
  if (reason.includes('unknown_key') || reason.includes('key_revoked')) return 'unknown_key';
  if (reason.includes('bad_signature')) return 'bad_signature';
  if (reason.includes('malformed')) return 'malformed';
  return 'mismatch';
}
