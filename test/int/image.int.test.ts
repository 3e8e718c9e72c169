import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createTestDatabase, eventually, freePort, ROOT, stackEnv } from './harness.ts';

/**
 * The real container image: built from the repository's Dockerfile by buildah (services/stack/image.sh, which
 * `make test` runs first) and run by podman with the image's own user, environment, entrypoint and command, on
 * the host's network against the running stack: the migration job as docker-compose.yml runs it, then the API,
 * the worker and the publisher, a decision allowed and one approved end to end.
 */
const IMAGE = process.env['COUNTERSIGN_IMAGE'];
const IMAGE_SH = path.join(ROOT, 'services/stack/image.sh');
const UID = 10001;

type Compose = { services: Record<string, { command?: string[]; entrypoint?: string[]; volumes?: string[]; environment?: Record<string, string | null>; healthcheck?: { test: string[] } }> };
const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as Compose;

/** podman on the image's storage, with the options this machine needs (image.sh). */
function podman(args: string[], timeoutMs = 180_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', [IMAGE_SH, 'podman', ...args], { maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function podmanOk(args: string[]): Promise<string> {
  const r = await podman(args);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

const envArgs = (env: Record<string, string>) => Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]);

/** A compose service's volumes, with the named volume `countersign-data` as the host folder `data`. */
const volumeArgs = (service: string, data: string) =>
  (compose.services[service]!.volumes ?? []).flatMap((v) => ['--volume', v.replace(/^countersign-data:/, `${data}:`)]);

type Container = { name: string; child: ChildProcess; output: () => string; stop: () => Promise<void> };

/** `podman run` of one long-running process of the image, in the foreground; resolves once its ready line is out. */
async function serve(name: string, args: string[], readyLine: RegExp, timeoutMs = 120_000): Promise<Container> {
  const child = spawn('bash', [IMAGE_SH, 'podman', 'run', '--rm', '--network', 'host', '--name', name, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const collect = (d: Buffer) => { out += d.toString(); };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    await podman(['stop', '--time', '10', name]);
    await exited;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${name} not ready within ${timeoutMs} ms:\n${out.slice(-3000)}`)), timeoutMs);
      const check = () => { if (readyLine.test(out)) { clearTimeout(t); resolve(); } };
      child.stdout.on('data', check);
      child.stderr.on('data', check);
      child.once('exit', (code) => { clearTimeout(t); reject(new Error(`${name} exited (${code}) before ready:\n${out.slice(-3000)}`)); });
    });
  } catch (err) {
    await podman(['rm', '--force', '--time', '0', name]);
    throw err;
  }
  return { name, child, output: () => out, stop };
}

/** The host's view of a running container's main process: its uid and gid lines and its command line. */
async function hostProcess(name: string): Promise<{ uids: number[]; gids: number[]; cmdline: string[] }> {
  const pid = (await podmanOk(['inspect', '--format', '{{.State.Pid}}', name])).trim();
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const ids = (key: string) => new RegExp(`^${key}:\\s+(.*)$`, 'm').exec(status)![1]!.trim().split(/\s+/).map(Number);
  return { uids: ids('Uid'), gids: ids('Gid'), cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean) };
}

// What walks the image's own files, run by the image's node as the image's user.
const INSPECT_SCRIPT = `
const fs = require('node:fs'), path = require('node:path');
const sources = [];
const walk = (d) => { for (const f of fs.readdirSync(d, { withFileTypes: true })) {
  const p = path.join(d, f.name);
  if (f.isDirectory()) { if (p !== '/app/node_modules') walk(p); }
  else if (/\\.(ts|tsx|mts|cts)$/.test(f.name) && !/\\.d\\.[mc]?ts$/.test(f.name)) sources.push(p);
} };
walk('/app');
const tooling = [];
const TOOLING = /^(tsx|typescript|esbuild|vite|ts-node|@esbuild[/].*|@swc[/]cli)$/;
const pkgs = (d, scope) => { for (const f of fs.readdirSync(d, { withFileTypes: true })) {
  if (!f.isDirectory()) continue;
  const p = path.join(d, f.name);
  if (!scope && f.name.startsWith('@')) { pkgs(p, f.name); continue; }
  if (!fs.existsSync(path.join(p, 'package.json'))) continue;
  if (TOOLING.test(scope ? scope + '/' + f.name : f.name)) tooling.push(p);
  if (fs.existsSync(path.join(p, 'node_modules'))) pkgs(path.join(p, 'node_modules'));
} };
pkgs('/app/node_modules');
console.log(JSON.stringify({ sources, tooling, dist: fs.readdirSync('/app/dist'), uid: process.getuid(), gid: process.getgid() }));
`;

// Writes a process of the image attempts on its own code, the system and (for the API, mounted read-only as in
// docker-compose.yml) the deployment's keys.
const TAMPER_SCRIPT = `
const fs = require('node:fs');
const targets = ['/app/dist/api.mjs', '/app/dist/worker.mjs', '/app/dist/workflow-bundle.js', '/app/package.json',
  '/app/node_modules/pg/package.json', '/app/services/events/migrations/new.sql', '/usr/local/bin/node', '/etc/passwd',
  '/var/lib/countersign/keys/planted', '/var/lib/countersign/bootstrap-key'];
const through = [];
for (const t of targets) { try { fs.appendFileSync(t, ''); through.push(t); } catch { /* refused */ } }
console.log(JSON.stringify({ attempts: targets.length, through }));
`;

// Each container start copies the image's files where the storage is vfs (no overlay mounts): minutes, not seconds.
describe.runIf(process.platform === 'linux')('the container image, built from the Dockerfile and run as docker-compose.yml runs it', { timeout: 300_000 }, () => {
  const suffix = randomBytes(4).toString('hex');
  const data = mkdtempSync(path.join(tmpdir(), 'cs-image-data-'));
  const containers: Container[] = [];
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let url = '';
  let env: Record<string, string> = {};

  beforeAll(async () => {
    if (!IMAGE) throw new Error('COUNTERSIGN_IMAGE is not set: run through `make test` (services/stack/image.sh ensure builds the image)');
    const base = stackEnv();
    // An empty database: the image's migration job makes the schema.
    database = await createTestDatabase({ migrate: false });
    // The named volume of docker-compose.yml, as a host folder the image's user owns.
    chownSync(data, UID, UID);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = {
      DATABASE_URL: database.url,
      TEMPORAL_ADDRESS: base.TEMPORAL_ADDRESS,
      KAFKA_BROKERS: base.KAFKA_BROKERS,
      COUNTERSIGN_KAFKA_TOPIC: `countersign.test.${suffix}`,
      COUNTERSIGN_TASK_QUEUE: `countersign-test-${suffix}`,
      COUNTERSIGN_PORT: String(port),
      COUNTERSIGN_PUBLIC_URL: url,
      COUNTERSIGN_LOG_LEVEL: 'info',
    };
  }, 120_000);

  afterAll(async () => {
    await Promise.all(containers.map((c) => c.stop()));
    await database?.drop();
    rmSync(data, { recursive: true, force: true });
  }, 120_000);

  it('is the runtime stage the Dockerfile describes: user 10001, node as entrypoint, the API by default', async () => {
    const [config] = JSON.parse(await podmanOk(['image', 'inspect', IMAGE!])) as [{ Config: { User: string; Entrypoint: string[]; Cmd: string[]; WorkingDir: string; Env: string[] }; Size: number }];
    expect(config.Config.User).toBe(`${UID}:${UID}`);
    expect(config.Config.Entrypoint).toEqual(['node']);
    expect(config.Config.Cmd).toEqual(['dist/api.mjs']);
    expect(config.Config.WorkingDir).toBe('/app');
    expect(config.Config.Env).toContain('COUNTERSIGN_WORKFLOW_BUNDLE=/app/dist/workflow-bundle.js');
    console.log(`image ${IMAGE}: ${(config.Size / 1e6).toFixed(0)} MB`);
  });

  it('holds no TypeScript source, no build record and no TypeScript tooling (tsx, typescript, esbuild, vite)', async () => {
    const seen = JSON.parse(await podmanOk(['run', '--rm', '--network', 'none', '--entrypoint', 'node', IMAGE!, '-e', INSPECT_SCRIPT])) as { sources: string[]; tooling: string[]; dist: string[]; uid: number; gid: number };
    expect(seen.sources).toEqual([]);
    expect(seen.tooling).toEqual([]);
    expect(seen.dist).toContain('workflow-bundle.js');
    expect(seen.dist.filter((f) => f.endsWith('.json'))).toEqual([]);
    expect([seen.uid, seen.gid]).toEqual([UID, UID]);
  });

  it('runs docker-compose.yml\'s migration job: schema, the deployment\'s keys, the bootstrap key, the example policy', async () => {
    const job = compose.services['migrate']!;
    const r = await podman(['run', '--rm', '--network', 'host', '--name', `cs-migrate-${suffix}`, ...volumeArgs('migrate', data),
      ...envArgs({ ...env, DATABASE_ADMIN_URL: database.adminUrl }), '--entrypoint', JSON.stringify(job.entrypoint), IMAGE!, ...job.command!]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stderr).toMatch(/\[migrate\] applied/);
    const seeded = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { bootstrap_key_file: string; agent: string; agent_key_file: string };
    expect(seeded.bootstrap_key_file).toBe('/var/lib/countersign/bootstrap-key');
    expect(seeded.agent_key_file).toBe('/var/lib/countersign/agent-key');
  });

  it('serves decisions from the image\'s API, worker and publisher: one allowed, one approved, receipts signed', async () => {
    // On the host's network the worker's and publisher's probe ports (9464 each in docker-compose.yml) must differ.
    const probePorts = { api: env['COUNTERSIGN_PORT']!, worker: String(await freePort()), publisher: String(await freePort()) };
    const workerEnv = { ...env, COUNTERSIGN_WORKER_METRICS_PORT: probePorts.worker };
    const publisherEnv = { ...env, COUNTERSIGN_PUBLISHER_METRICS_PORT: probePorts.publisher };
    expect(Object.keys(compose.services['worker']!.environment!)).toContain('COUNTERSIGN_WORKER_METRICS_PORT');
    expect(Object.keys(compose.services['publisher']!.environment!)).toContain('COUNTERSIGN_PUBLISHER_METRICS_PORT');
    const started = await Promise.allSettled([
      serve(`cs-worker-${suffix}`, [...volumeArgs('worker', data), ...envArgs(workerEnv), IMAGE!, ...compose.services['worker']!.command!], /worker started/),
      serve(`cs-publisher-${suffix}`, [...volumeArgs('publisher', data), ...envArgs(publisherEnv), IMAGE!, ...compose.services['publisher']!.command!], /publisher starting/),
      // The API with no command: the image's CMD.
      serve(`cs-api-${suffix}`, [...volumeArgs('api', data), ...envArgs(env), IMAGE!], /api listening/),
    ]);
    for (const s of started) if (s.status === 'fulfilled') containers.push(s.value);
    const refused = started.find((s) => s.status === 'rejected');
    if (refused) throw refused.reason;

    // Each runs as the image's user, from its built JavaScript with plain node.
    for (const [c, entry] of containers.map((c) => [c, /cs-(\w+)-/.exec(c.name)![1]] as const)) {
      const proc = await hostProcess(c.name);
      expect(proc.uids, c.name).toEqual([UID, UID, UID, UID]);
      expect(proc.gids, c.name).toEqual([UID, UID, UID, UID]);
      expect(proc.cmdline, c.name).toEqual(['node', `dist/${entry}.mjs`]);
    }

    // docker-compose.yml's health checks, run inside each container as compose runs them (its port substituted).
    for (const svc of ['api', 'worker', 'publisher'] as const) {
      const [kind, ...check] = compose.services[svc]!.healthcheck!.test;
      expect(kind).toBe('CMD');
      const command = check.map((w) => w.replace(/127\.0\.0\.1:(8080|9464)/, `127.0.0.1:${probePorts[svc]}`));
      await eventually(async () => ((await podman(['exec', `cs-${svc}-${suffix}`, ...command])).code === 0 ? true : undefined), 60_000, `${svc}'s health check`);
    }

    const bootstrap = { url, key: readFileSync(path.join(data, 'bootstrap-key'), 'utf8').trim() };
    const agent = { url, key: readFileSync(path.join(data, 'agent-key'), 'utf8').trim() };
    const clerk = await api(bootstrap, 'POST', '/v1/principals', { name: 'image-clerk', kind: 'person', roles: ['approver'], groups: ['finance'] });
    expect(clerk.status, JSON.stringify(clerk.body)).toBe(201);
    const ask = (amount: number) => api(agent, 'POST', '/v1/decisions', { agent: { id: 'support-bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount } });
    const allow = await ask(120);
    expect(allow.status, JSON.stringify(allow.body)).toBe(200);
    expect(allow.body.decision).toBe('ALLOW');
    const pending = await ask(900);
    expect(pending.body.status, JSON.stringify(pending.body)).toBe('pending_approval');
    const answered = await eventually(async () => {
      const r = await api({ url, key: clerk.body.api_key }, 'POST', `/v1/decisions/${pending.body.decision_id}/approvals`, { verdict: 'approve' });
      return r.status === 200 ? r : undefined;
    }, 60_000, 'the approval to count');
    expect(answered.status).toBe(200);
    for (const id of [allow.body.decision_id, pending.body.decision_id]) {
      const receipt = await eventually(async () => {
        const r = await api(bootstrap, 'GET', `/v1/decisions/${id}/receipt`);
        return r.status === 200 && r.body.receipt?.decision === 'ALLOW' ? r.body : undefined;
      }, 60_000, `receipt of ${id}`);
      expect(receipt.receipt.decision_id).toBe(id);
    }
    // The publisher put the runs' events on the topic (its metrics count them; it signs nothing and has no keys).
    const published = await eventually(async () => {
      const r = await podman(['exec', `cs-publisher-${suffix}`, 'node', '-e', "process.stdout.write(String(require('node:fs').existsSync('/var/lib/countersign/keys')))"]);
      return r.code === 0 ? r.stdout : undefined;
    }, 30_000, 'the publisher to answer');
    expect(published).toBe('false');
  });

  it('attack image-self-tamper: a running process of the image cannot rewrite its code, the system or the keys', async () => {
    let attempts = 0;
    const through: string[] = [];
    for (const c of containers.filter((x) => /cs-(api|worker)-/.test(x.name))) {
      const r = JSON.parse(await podmanOk(['exec', c.name, 'node', '-e', TAMPER_SCRIPT])) as { attempts: number; through: string[] };
      attempts += r.attempts;
      through.push(...r.through.map((t) => `${c.name}: ${t}`));
    }
    console.log(`attack image-self-tamper: ${attempts} attempts, ${through.length} got through`);
    expect(attempts).toBeGreaterThan(0);
    expect(through).toEqual([]);
  });
});
