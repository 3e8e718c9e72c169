// Writes the API's OpenAPI document, built from its zod routes in-process (no listener, no connection), for the
// console's typed client (openapi-typescript reads it at build time).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { Client } from '@temporalio/client';
import { loadConfig } from '../config.ts';
import type { ActivePolicies } from '../decisions/active-policies.ts';
import type { ApiKeyCache } from '../identity/key-cache.ts';
import type { ToolCatalogs } from '../catalog/catalog-cache.ts';
import { buildServer } from '../api/server.ts';

/** The document as the running API serves it at /openapi.json. */
export async function openApiDocument(): Promise<unknown> {
  const config = loadConfig({ DATABASE_URL: 'postgres://unused@127.0.0.1:1/unused', COUNTERSIGN_ATTESTATION_SECRET: 'x'.repeat(64), ...process.env, COUNTERSIGN_LOG_LEVEL: 'silent' });
  // Never connected: routes are only registered, and the document is read before the server is ready.
  const db = new pg.Pool({ connectionString: config.DATABASE_URL });
  const app = await buildServer({ config, db, temporal: {} as Client, policies: {} as ActivePolicies, keys: {} as ApiKeyCache, catalogs: {} as ToolCatalogs });
  // The document is complete once the swagger plugin's ready hook has run (it is registered before any hook that
  // would connect); the later hooks' refusals to connect are expected here.
  try {
    await app.ready();
  } catch {
    // expected: nothing to connect to
  }
  const doc = app.swagger();
  await app.close().catch(() => {});
  await db.end();
  return doc;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = process.argv[2] ?? path.join(import.meta.dirname, 'generated', 'openapi.json');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(await openApiDocument(), null, 2)}\n`);
  process.stderr.write(`[console] ${out}\n`);
  // A listener that failed to connect may still hold a retry timer.
  process.exit(0);
}
