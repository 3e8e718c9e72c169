import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../config.ts';
import { ActivePolicies } from '../decisions/active-policies.ts';
import { createPool } from '../events/db.ts';
import { createLogger } from '../logger.ts';
import { requireSigningKeys } from '../receipts/deployment-keys.ts';
import { buildServer } from './server.ts';

const config = loadConfig();
const log = createLogger('api', config.COUNTERSIGN_LOG_LEVEL);
// The API signs (activations, exports, run starts): it starts only with the deployment's keys.
await requireSigningKeys(config.keysDir, config.COUNTERSIGN_ATTESTATION_SECRET).catch((err: unknown) => {
  log('error', `refusing to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
const db = createPool(config.DATABASE_URL, 20);
// Lazy: the API starts (and answers 503 naming temporal) even while Temporal is down.
const connection = Connection.lazy({ address: config.TEMPORAL_ADDRESS, connectTimeout: '3s' });
const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
const policies = new ActivePolicies(db, config.DATABASE_URL, log);
await policies.start();

const app = await buildServer({ config, db, temporal, policies });
await app.listen({ host: config.COUNTERSIGN_HOST, port: config.COUNTERSIGN_PORT });
log('info', 'api listening', { url: config.publicUrl });

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void (async () => {
      await app.close();
      await policies.stop();
      await connection.close().catch(() => {});
      await db.end();
      process.exit(0);
    })();
  });
}
