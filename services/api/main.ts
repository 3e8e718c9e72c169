import { Client, Connection } from '@temporalio/client';
import { loadConfigOrExit } from '../config.ts';
import { ActivePolicies } from '../decisions/active-policies.ts';
import { createPool } from '../events/db.ts';
import { createLogger } from '../logger.ts';
import { requireSigningKeys } from '../receipts/deployment-keys.ts';
import { connectionOptions } from '../temporal/connection-options.ts';
import { describeTemporal } from '../temporal/connection-settings.ts';
import { awaitTemporalCredentials, probeTemporal, temporalRefusal } from '../temporal/credentials-check.ts';
import { buildServer } from './server.ts';
import { startTracing } from '../telemetry/tracing.ts';
import { clientTracing } from '../telemetry/temporal-tracing.ts';

const config = loadConfigOrExit(process.env, 'api');
const log = createLogger('api', config.COUNTERSIGN_LOG_LEVEL);
const tracing = await startTracing('countersign-api', config);
// The API signs (activations, exports, run starts): it starts only with the deployment's keys.
await requireSigningKeys(config.keysDir, config.COUNTERSIGN_ATTESTATION_SECRET).catch((err: unknown) => {
  log('error', `refusing to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
const db = createPool(config.DATABASE_URL, config.COUNTERSIGN_PG_POOL_MAX ?? 20);
// Lazy: the API starts (and answers 503 naming temporal) even while Temporal is down. Credentials Temporal
// refuses (a missing or wrong client certificate, an untrusted server, a wrong API key) are no outage: the API
// refuses to start, with one line, as soon as Temporal (or its TLS proxy) says so.
const stopping = new AbortController();
const refuseToStart = (err: unknown): never => {
  log('error', `refusing to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
};
const firstProbe = await probeTemporal(config.temporal);
if (firstProbe.kind === 'refused') refuseToStart(temporalRefusal(config.temporal, firstProbe.reason));
const connection = Connection.lazy({ ...connectionOptions(config.temporal), connectTimeout: '3s' });
const interceptors = await clientTracing(tracing);
const temporal = new Client({ connection, namespace: config.temporal.namespace, ...(interceptors ? { interceptors } : {}) });
const policies = new ActivePolicies(db, config.DATABASE_URL, log);
await policies.start();

const app = await buildServer({ config, db, temporal, policies });
await app.listen({ host: config.COUNTERSIGN_HOST, port: config.COUNTERSIGN_PORT });
log('info', 'api listening', { url: config.publicUrl, temporal: describeTemporal(config.temporal) });
// Temporal unreachable at start: keep checking in the background until it answers or refuses us.
if (firstProbe.kind === 'unreachable') void awaitTemporalCredentials(config.temporal, { signal: stopping.signal }).catch(refuseToStart);

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    stopping.abort();
    void (async () => {
      await app.close();
      await policies.stop();
      await connection.close().catch(() => {});
      await db.end();
      if (tracing.enabled) await tracing.shutdown();
      process.exit(0);
    })();
  });
}
