import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import type { OutgoingHttpHeaders } from 'node:http';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildServer } from '../../services/api/server.ts';
import { loadConfig } from '../../services/config.ts';
import { ActivePolicies } from '../../services/decisions/active-policies.ts';
import { createInspectionPool, createPool, type Db } from '../../services/events/db.ts';
import { ensureBootstrap } from '../../services/identity/bootstrap.ts';
import { loadAttestationSecret } from '../../services/decisions/attestation.ts';
import { loadOrCreateKeyring } from '../../services/receipts/keyring.ts';
import { createTestDatabase, stackEnv } from './harness.ts';

export type InProcessApi = {
  app: FastifyInstance;
  /** The database's URL (the app role). */
  url: string;
  /** The app role's pool, and one that sees every tenant's rows (to inspect, or to change rows as another writer). */
  db: Db;
  inspect: Db;
  /** The bootstrap platform admin's key. */
  boot: string;
  /** One request through Fastify inject; a JSON body comes back parsed. */
  call: (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, key: string | null, body?: unknown) => Promise<{ status: number; headers: OutgoingHttpHeaders; body: any }>;
  stop: () => Promise<void>;
};

/**
 * The API in this process (Fastify inject, no Temporal worker) on a database of its own, with a bootstrap admin:
 * for tests of the API surface itself. `env` overrides its configuration.
 */
export async function startInProcessApi(env: Record<string, string> = {}): Promise<InProcessApi> {
  const database = await createTestDatabase();
  const db = createPool(database.url, 4);
  const inspect = createInspectionPool(database.url, 2);
  const first = await ensureBootstrap(db, { tenantId: 'default', keyFile: path.join(tmpdir(), `cs-api-${randomBytes(4).toString('hex')}`) });
  if (first.token === null) throw new Error(first.refused);
  const boot = first.token;
  const config = loadConfig({ ...stackEnv(), DATABASE_URL: database.url, COUNTERSIGN_LOG_LEVEL: 'silent', ...env });
  // The deployment's keys, made once as `make up` does (the API reads them, never creates them).
  await loadOrCreateKeyring(config.keysDir);
  loadAttestationSecret(config.keysDir, config.COUNTERSIGN_ATTESTATION_SECRET);
  const temporal = new Client({ connection: Connection.lazy({ address: config.TEMPORAL_ADDRESS }) });
  const app = await buildServer({ config, db, temporal, policies: new ActivePolicies(db, config.DATABASE_URL, () => {}) });
  await app.ready();
  return {
    app, url: database.url, db, inspect, boot,
    call: async (method, url, key, body) => {
      const res = await app.inject({ method, url, headers: key ? { authorization: `Bearer ${key}` } : {}, ...(body !== undefined ? { payload: body as Record<string, unknown> } : {}) });
      return { status: res.statusCode, headers: res.headers, body: res.headers['content-type']?.toString().includes('json') ? res.json() : res.body };
    },
    stop: async () => {
      await app.close();
      await db.end();
      await inspect.end();
      await database.drop();
    },
  };
}
