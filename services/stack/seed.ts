// `make up`: the bootstrap key of the default tenant, the example policy, and an agent (`support-bot`) with a
// key of its own for the README's examples; each idempotent.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../config.ts';
import { createPool, withTenant, type Db } from '../events/db.ts';
import { bootstrapPrincipalId, ensureBootstrap } from '../identity/bootstrap.ts';
import { createApiKey } from '../identity/key-management.ts';
import { createPrincipal, type Actor } from '../identity/members.ts';
import { authenticate } from '../identity/principals.ts';
import { activatePolicy } from '../lifecycle/activate-policy.ts';
import { parsePolicyText } from '../policy/index.ts';
import { loadOrCreateKeyring } from '../receipts/keyring.ts';

const SEED_AGENT = 'support-bot';

/** The seeded agent's key in `keyFile`: kept while it works, else a new key for the agent (created once). */
async function ensureAgentKey(db: Db, tenantId: string, keyFile: string, actor: Actor): Promise<{ created: boolean }> {
  const existing = existsSync(keyFile) ? readFileSync(keyFile, 'utf8').trim() : '';
  if (existing && (await authenticate(db, existing, new Date()))) return { created: false };
  const found = await withTenant(db, tenantId, (c) => c.query<{ id: string }>(
    `SELECT id FROM principals WHERE tenant_id = $1 AND agent_id = $2 AND disabled_at IS NULL`, [tenantId, SEED_AGENT],
  ));
  let token: string;
  if (found.rows[0]) {
    const key = await createApiKey(db, tenantId, { principalId: found.rows[0].id, name: 'make up', now: new Date(), actor });
    token = key!.api_key;
  } else {
    token = (await createPrincipal(db, tenantId, { name: SEED_AGENT, kind: 'agent', roles: ['agent'], groups: [], key_name: 'make up', acts_for: [] }, actor)).api_key;
  }
  mkdirSync(path.dirname(keyFile), { recursive: true });
  writeFileSync(keyFile, `${token}\n`, { mode: 0o600 });
  return { created: true };
}

const config = loadConfig();
const tenantId = config.COUNTERSIGN_DEFAULT_TENANT;
const db = createPool(config.DATABASE_URL, 2);
try {
  const boot = await ensureBootstrap(db, { tenantId, keyFile: config.bootstrapKeyFile });
  if (boot.token === null) process.stderr.write(`[seed] ${boot.refused}\n`);
  const file = path.join(import.meta.dirname, 'example-policy.yaml');
  const parsed = parsePolicyText(readFileSync(file, 'utf8'), file);
  if (!parsed.ok) throw new Error(`example policy is invalid: ${parsed.errors.map((e) => e.message).join('; ')}`);
  const keyring = await loadOrCreateKeyring(config.keysDir);
  const actor = { principalId: bootstrapPrincipalId(tenantId), platformAdmin: true };
  const activated = await activatePolicy(db, keyring, { tenantId, document: parsed.document, actor: actor.principalId });
  const agentKeyFile = path.join(config.COUNTERSIGN_DATA_DIR, 'agent-key');
  const agent = await ensureAgentKey(db, tenantId, agentKeyFile, actor);
  process.stdout.write(`${JSON.stringify({ bootstrap_key_file: config.bootstrapKeyFile, key_created: boot.created, agent: SEED_AGENT, agent_key_file: agentKeyFile, agent_key_created: agent.created, policy: activated.policy_id, version: activated.version })}\n`);
} finally {
  await db.end();
}
