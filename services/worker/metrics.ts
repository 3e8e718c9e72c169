import { createServer, type Server } from 'node:http';
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

/** Serves GET /metrics on host:port; anything else is a 404. */
export async function serveMetrics(registry: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

/** A short, bounded label for a refusal reason (the full reason is in the log line). */
export function refusalKind(reason: string): 'unsigned' | 'bad_signature' | 'unknown_key' | 'malformed' | 'mismatch' {
  if (reason.includes('no signature') || reason.includes('no attestation')) return 'unsigned';
  if (reason.includes('unknown_key') || reason.includes('key_revoked')) return 'unknown_key';
  if (reason.includes('bad_signature')) return 'bad_signature';
  if (reason.includes('malformed')) return 'malformed';
  return 'mismatch';
}
