import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../server.ts';

async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, reject) => { t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(t);
  }
}

export function registerHealthRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/healthz', { schema: { hide: true }, config: { rateLimit: false } }, async () => ({ status: 'ok' }));

  /** Ready when the dependencies a decision needs answer: Postgres and Temporal. Kafka is not one of them. */
  app.get('/readyz', { schema: { hide: true }, config: { rateLimit: false } }, async (_req, reply) => {
    const checks = await Promise.all([
      within(2_000, deps.db.query('SELECT 1')).then(() => ['postgres', 'up'] as const, (e: Error) => ['postgres', `down: ${e.message}`] as const),
      within(2_000, deps.temporal.connection.workflowService.getSystemInfo({})).then(() => ['temporal', 'up'] as const, (e: Error) => ['temporal', `down: ${e.message}`] as const),
    ]);
    const dependencies = Object.fromEntries(checks);
    const down = checks.filter(([, s]) => s !== 'up').map(([n]) => n);
    void reply.status(down.length ? 503 : 200);
    return { status: down.length ? 'unavailable' : 'ready', dependencies, ...(down.length ? { down } : {}) };
  });
}
