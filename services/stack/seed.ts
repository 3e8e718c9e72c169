// `make up`: the bootstrap key of the default tenant and the example policy, both idempotent.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../config.ts';
import { createPool } from '../events/db.ts';
import { ensureBootstrap } from '../identity/bootstrap.ts';
import { activatePolicy } from '../lifecycle/activate-policy.ts';
import { parsePolicyText } from '../policy/index.ts';
import { loadOrCreateKeyring } from '../receipts/keyring.ts';

const config = loadConfig();
const db = createPool(config.DATABASE_URL, 2);
try {
  const { created } = await ensureBootstrap(db, { tenantId: config.COUNTERSIGN_DEFAULT_TENANT, keyFile: config.bootstrapKeyFile });
  const file = path.join(import.meta.dirname, 'example-policy.yaml');
  const parsed = parsePolicyText(readFileSync(file, 'utf8'), file);
  if (!parsed.ok) throw new Error(`example policy is invalid: ${parsed.errors.map((e) => e.message).join('; ')}`);
  const keyring = await loadOrCreateKeyring(config.keysDir);
  const activated = await activatePolicy(db, keyring, {
    tenantId: config.COUNTERSIGN_DEFAULT_TENANT,
    document: parsed.document,
    actor: `prn_bootstrap_${config.COUNTERSIGN_DEFAULT_TENANT}`,
  });
  process.stdout.write(`${JSON.stringify({ bootstrap_key_file: config.bootstrapKeyFile, key_created: created, policy: activated.policy_id, version: activated.version })}\n`);
} finally {
  await db.end();
}
