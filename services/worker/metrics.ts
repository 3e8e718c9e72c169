import { createServer, type Server, type ServerResponse } from 'node:http';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The worker's Prometheus metrics: what an operator watches for someone starting or messaging workflows
 * straight through Temporal. Labels carry the reason's kind only, never a tenant, principal or workflow id
 * (those are in the worker's warning log line).
 */
export function workerMetrics(): { registry: Registry; refusedStarts: Counter<'reason'> } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'countersign_worker_' });
  const refusedStarts = new Counter({
    name: 'countersign_worker_refused_starts_total',
    help: 'Workflow starts (decisions, policy activation reviews) refused before their first write: no valid signature or attestation of the API over the start.',
    labelNames: ['reason'],
    registers: [registry],
  });
  return { registry, refusedStarts };
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
