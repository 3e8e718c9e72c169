import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { attest, loadAttestationSecret, newNonce } from '../../services/decisions/attestation.ts';
import { migrate } from '../../services/events/migrate.ts';
import { createInspectionPool, type Db } from '../../services/events/db.ts';
import { bootstrapPrincipalId, ensureBootstrap } from '../../services/identity/bootstrap.ts';
import { createPrincipal } from '../../services/identity/members.ts';
import { activatePolicy } from '../../services/lifecycle/activate-policy.ts';
import { parsePolicyText } from '../../services/policy/index.ts';
import { sha256Digest } from '../../services/receipts/canonical.ts';
import { loadOrCreateKeyring } from '../../services/receipts/keyring.ts';
import type { AnswerInput } from '../../workflows/decision-messages.ts';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** The stack's environment, exported by `make test` (services/stack/test.sh). */
export function stackEnv(): { DATABASE_URL: string; DATABASE_ADMIN_URL: string; TEMPORAL_ADDRESS: string; KAFKA_BROKERS: string; COUNTERSIGN_DATA_DIR: string } {
  const need = (k: string) => {
    const v = process.env[k];
    if (!v) throw new Error(`${k} is not set: run integration tests through \`make test\``);
    return v;
  };
  return {
    DATABASE_URL: need('DATABASE_URL'),
    DATABASE_ADMIN_URL: process.env['DATABASE_ADMIN_URL'] ?? need('DATABASE_URL'),
    TEMPORAL_ADDRESS: need('TEMPORAL_ADDRESS'),
    KAFKA_BROKERS: need('KAFKA_BROKERS'),
    COUNTERSIGN_DATA_DIR: need('COUNTERSIGN_DATA_DIR'),
  };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

/** A fresh database (owned by the schema owner, migrated, app role granted unless `migrate: false`) for one test file. */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<{ url: string; adminUrl: string; drop: () => Promise<void> }> {
  const env = stackEnv();
  const name = `cs_test_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: env.DATABASE_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = withDatabase(env.DATABASE_URL, name);
  const adminUrl = withDatabase(env.DATABASE_ADMIN_URL, name);
  if (options.migrate ?? true) await migrate(adminUrl, url);
  return {
    url,
    adminUrl,
    drop: async () => {
      const c = new pg.Client({ connectionString: env.DATABASE_ADMIN_URL });
      await c.connect();
      try {
        // FORCE may only end the owner's own sessions; the app role's sessions of a process just killed end by
        // themselves within moments, so a refusal (42501) is waited out.
        for (let attempt = 0; ; attempt++) {
          try {
            await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
            break;
          } catch (err) {
            if ((err as { code?: string }).code !== '42501' || attempt >= 50) throw err;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      } finally {
        await c.end();
      }
    },
  };
}

export type AppProcess = { name: string; child: ChildProcess; output: () => string; stop: (signal?: NodeJS.Signals) => Promise<void> };

/** Starts one of our processes (`services/<x>/main.ts`) with an environment, and waits for its ready line. */
export async function startProcess(name: string, entry: string, env: Record<string, string>, readyLine: RegExp, timeoutMs = 60_000): Promise<AppProcess> {
  // A TypeScript source under ROOT runs through tsx; a built .mjs (services/build/build.ts) with plain node.
  const args = entry.endsWith('.mjs') ? [entry] : ['--import', 'tsx', path.join(ROOT, entry)];
  // CPU profiles of the stack's processes, written when each exits (bench diagnosis): COUNTERSIGN_CPU_PROF_DIR=/tmp/prof.
  const profDir = process.env['COUNTERSIGN_CPU_PROF_DIR'];
  // One folder per process; Node names each thread's file (a loader or workflow thread has its own).
  if (profDir) args.unshift('--cpu-prof', `--cpu-prof-dir=${path.join(profDir, `${name}-${Date.now()}`)}`);
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL'); // never ready: it must not run on behind the failed test
      reject(new Error(`${name} not ready within ${timeoutMs} ms:\n${out.slice(-3000)}`));
    }, timeoutMs);
    const check = () => {
      if (readyLine.test(out)) { clearTimeout(t); resolve(); }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    // 'close', not 'exit': a process's last lines (why it refuses to start) may still be in the pipe when it exits.
    child.once('close', (code) => { clearTimeout(t); reject(new Error(`${name} exited (${code}) before ready:\n${out.slice(-3000)}`)); });
  });
  return {
    name,
    child,
    output: () => out,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * The agent ids the existing integration tests ask for with `stack.key` (the test operator acts for them; new
 * tests use an agent principal's own key). Entries ending in `*` are prefixes.
 */
export const TEST_OPERATOR_ACTS_FOR = [
  'a', 'x', 'bot', 'bot-a', 'bot-b', 'b-bot', 'billing-bot', 'db-bot', 'deploy-bot', 'gate-bot', 'inflight-bot', 'matrix-bot', 'ops-bot',
  'support-bot', 'val-bot', 'life-bot', 'push-bot-*', 'cli-bot-*', 'agent-*', 'bound-*', 'mf-*',
];

export type TestStack = {
  url: string;
  /** The test operator's key: every role of the default tenant (group `admins`), acting for TEST_OPERATOR_ACTS_FOR. */
  key: string;
  /** The bootstrap key: platform admin (tenants), and admin, author, auditor of the default tenant. */
  bootstrapKey: string;
  db: Db;
  dbUrl: string;
  topic: string;
  taskQueue: string;
  env: Record<string, string>;
  api: AppProcess;
  worker: AppProcess;
  publisher: AppProcess;
  startWorker: (extra?: Record<string, string>) => Promise<AppProcess>;
  stop: () => Promise<void>;
};

/**
 * A whole Countersign (API, worker, publisher) on its own database, topic and task queue, against the shared
 * real Temporal, Kafka and Postgres, with the bootstrap key and the example policy loaded.
 */
export async function startTestStack(extraEnv: Record<string, string> = {}, options: {
  workerEntry?: string;
  /** The API and publisher as built (dist/api.mjs, dist/publisher.mjs) instead of their sources through tsx. */
  apiEntry?: string;
  publisherEntry?: string;
  /** The environment the processes get, from the stack's own (e.g. their Postgres reached through a proxy). */
  processEnv?: (env: Record<string, string>) => Record<string, string>;
} = {}): Promise<TestStack> {
  const base = stackEnv();
  const database = await createTestDatabase();
  const suffix = randomBytes(4).toString('hex');
  const port = extraEnv['COUNTERSIGN_PORT'] ? Number(extraEnv['COUNTERSIGN_PORT']) : await freePort();
  const env: Record<string, string> = {
    DATABASE_URL: database.url,
    DATABASE_ADMIN_URL: database.adminUrl,
    TEMPORAL_ADDRESS: base.TEMPORAL_ADDRESS,
    KAFKA_BROKERS: base.KAFKA_BROKERS,
    COUNTERSIGN_DATA_DIR: base.COUNTERSIGN_DATA_DIR,
    COUNTERSIGN_KEYS_DIR: path.join(base.COUNTERSIGN_DATA_DIR, 'keys'),
    COUNTERSIGN_KAFKA_TOPIC: `countersign.test.${suffix}`,
    COUNTERSIGN_TASK_QUEUE: `countersign-test-${suffix}`,
    COUNTERSIGN_PORT: String(port),
    COUNTERSIGN_BOOTSTRAP_KEY_FILE: path.join(base.COUNTERSIGN_DATA_DIR, `test-key-${suffix}`),
    COUNTERSIGN_LOG_LEVEL: 'warn',
    COUNTERSIGN_WORKFLOW_BUNDLE: process.env['COUNTERSIGN_WORKFLOW_BUNDLE'] ?? '',
    ...extraEnv,
  };
  // The deployment's keys, made once before any process starts (as `make up` does): processes never create them.
  await loadOrCreateKeyring(env['COUNTERSIGN_KEYS_DIR']!);
  loadAttestationSecret(env['COUNTERSIGN_KEYS_DIR']!);
  // Tests inspect every tenant's rows: an inspection-scoped pool (row-level security, migration 0002).
  const db = createInspectionPool(database.url, 4);
  const boot = await ensureBootstrap(db, { tenantId: 'default', keyFile: env['COUNTERSIGN_BOOTSTRAP_KEY_FILE']! });
  if (boot.token === null) throw new Error(boot.refused);
  // The bootstrap key is for setting up, not an agent key: the tests' everyday key is a test operator's.
  const operator = await createPrincipal(db, 'default', {
    name: 'test operator', kind: 'person', roles: ['admin', 'author', 'auditor', 'approver', 'agent'], groups: ['admins'], key_name: 'test operator', acts_for: TEST_OPERATOR_ACTS_FOR,
  }, { principalId: bootstrapPrincipalId('default'), platformAdmin: true });
  const file = path.join(ROOT, 'services/stack/example-policy.yaml');
  const parsed = parsePolicyText(readFileSync(file, 'utf8'), file);
  if (!parsed.ok) throw new Error('example policy is invalid');
  await activatePolicy(db, await loadOrCreateKeyring(env['COUNTERSIGN_KEYS_DIR']!), { tenantId: 'default', document: parsed.document, actor: 'test' });

  const penv = options.processEnv ? options.processEnv(env) : env;
  const startWorker = (extra: Record<string, string> = {}) => startProcess('worker', options.workerEntry ?? 'services/worker/main.ts', { ...penv, COUNTERSIGN_LOG_LEVEL: 'info', ...extra }, /worker started/);
  const started = await Promise.allSettled([
    startWorker(),
    startProcess('publisher', options.publisherEntry ?? 'services/publisher/main.ts', { ...penv, COUNTERSIGN_LOG_LEVEL: 'info' }, /publisher starting/),
    startProcess('api', options.apiEntry ?? 'services/api/main.ts', { ...penv, COUNTERSIGN_LOG_LEVEL: 'info' }, /api listening/),
  ]);
  const refused = started.find((s) => s.status === 'rejected');
  if (refused) {
    // One process not ready: the others must not outlive the failed set-up (they would load every later test).
    await Promise.all(started.flatMap((s) => (s.status === 'fulfilled' ? [s.value.stop('SIGKILL')] : [])));
    await db.end();
    await database.drop().catch(() => {});
    throw refused.reason;
  }
  const [worker, publisher, api] = started.map((s) => (s as PromiseFulfilledResult<AppProcess>).value) as [AppProcess, AppProcess, AppProcess];
  const stack: TestStack = {
    url: `http://127.0.0.1:${port}`,
    key: operator.api_key,
    bootstrapKey: boot.token,
    db,
    dbUrl: database.url,
    topic: env['COUNTERSIGN_KAFKA_TOPIC']!,
    taskQueue: env['COUNTERSIGN_TASK_QUEUE']!,
    env,
    api,
    worker,
    publisher,
    startWorker,
    stop: async () => {
      await Promise.all([stack.api.stop(), stack.worker.stop(), stack.publisher.stop()]);
      await db.end();
      await database.drop();
    },
  };
  return stack;
}

export async function api(stack: { url: string; key: string }, method: string, route: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${stack.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${stack.key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Polls until fn returns a value (not undefined) or the time runs out. */
export async function eventually<T>(fn: () => Promise<T | undefined>, timeoutMs = 30_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A principal of the stack's default tenant, created through the API; answers its id and key. */
export async function addPrincipal(stack: TestStack, body: { name: string; kind?: 'person' | 'agent'; roles: string[]; groups?: string[]; email?: string; slack_user_id?: string; agent_id?: string; acts_for?: string[] }): Promise<{ id: string; key: string }> {
  const res = await api(stack, 'POST', '/v1/principals', { kind: 'person', groups: [], ...body });
  if (res.status !== 201 && res.status !== 200) throw new Error(`creating principal failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.id, key: res.body.api_key };
}

/** Activates a policy (YAML text) in the stack's default tenant, as the next version of its id. */
export async function activateYaml(stack: TestStack, yaml: string): Promise<{ policy_id: string; version: number }> {
  const parsed = parsePolicyText(yaml, 'test-policy.yaml');
  if (!parsed.ok) throw new Error(`test policy is invalid: ${parsed.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
  return activatePolicy(stack.db, await loadOrCreateKeyring(stack.env['COUNTERSIGN_KEYS_DIR']!), { tenantId: 'default', document: parsed.document, actor: 'test' });
}

/**
 * An approver's answer to round 1 of a run, attested as the API attests it (with the roles and groups it read), to send straight to the run through
 * Temporal (the API refuses to answer a run whose first events are not written yet).
 */
export function attestedAnswer(stack: TestStack, answer: { decisionId: string; approverId: string; roles: string[]; groups: string[]; args: unknown; snapshotHash: string }): AnswerInput {
  return attest(loadAttestationSecret(stack.env['COUNTERSIGN_KEYS_DIR']!), {
    kind: 'answer' as const, decision_id: answer.decisionId, nonce: newNonce(), round: 1, verdict: 'approve' as const, channel: 'api' as const, approver_id: answer.approverId,
    approver_roles: answer.roles, approver_groups: answer.groups, tenant_id: 'default', args_digest: sha256Digest(answer.args), snapshot_hash: answer.snapshotHash,
  }, new Date());
}
