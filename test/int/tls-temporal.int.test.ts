import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAttestationSecret } from '../../services/decisions/attestation.ts';
import { loadOrCreateKeyring } from '../../services/receipts/keyring.ts';
import { addPrincipal, api, eventually, freePort, stackEnv, startProcess, startTestStack, type AppProcess, type TestStack } from './harness.ts';
import { startNginxGrpcProxy } from './nginx-grpc-proxy.ts';
import { makeTestPki, type TestPki } from './test-pki.ts';

/**
 * Temporal reached the production way: through a TLS-terminating gRPC proxy (Debian's nginx, `grpc_pass`) in front
 * of the dev server, configured only through the SDK's environment configuration (`TEMPORAL_*` variables or a TOML
 * profile). With the right credentials decisions flow; with none or wrong ones the API and the worker each refuse
 * to start with one line.
 */
describe('Temporal over TLS, mutual TLS and an API key', () => {
  let dir: string;
  let pki: TestPki;
  let proxy: Awaited<ReturnType<typeof startNginxGrpcProxy>>;
  let mtls: string;
  let keyed: string;
  const apiKey = `tk_${Math.random().toString(36).slice(2)}`;
  let stack: TestStack | undefined;
  const extra: AppProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'cs-temporal-tls-'));
    pki = makeTestPki(dir);
    const server = pki.issue('temporal-proxy', pki.ca, 'DNS:temporal.test,IP:127.0.0.1');
    const [mtlsPort, apiKeyPort] = [await freePort(), await freePort()];
    proxy = await startNginxGrpcProxy({ dir, upstream: stackEnv().TEMPORAL_ADDRESS, server, clientCa: pki.ca.cert, mtlsPort, apiKeyPort, apiKey });
    mtls = `127.0.0.1:${mtlsPort}`;
    keyed = `127.0.0.1:${apiKeyPort}`;
  });
  afterAll(async () => {
    for (const p of extra) await p.stop();
    await stack?.stop();
    await proxy?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const mutualEnv = () => {
    const client = pki.issue('countersign-client', pki.ca, 'DNS:countersign');
    return {
      TEMPORAL_ADDRESS: mtls,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca.cert,
      TEMPORAL_TLS_SERVER_NAME: 'temporal.test',
      TEMPORAL_TLS_CLIENT_CERT_PATH: client.cert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: client.key,
    };
  };

  const decide = async (url: string, key: string, agent: string) => {
    const res = await api({ url, key }, 'POST', '/v1/decisions', { agent: { id: agent }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 120 } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.decision).toBe('ALLOW');
    return res.body.decision_id as string;
  };
  const receiptOf = (url: string, key: string, id: string) => eventually(async () => {
    const r = await api({ url, key }, 'GET', `/v1/decisions/${id}/receipt`);
    return r.status === 200 ? r.body : undefined;
  }, 60_000, `the receipt of ${id}`);

  it('mutual TLS through the proxy: the API starts runs and the worker signs their receipts', async () => {
    stack = await startTestStack({}, { processEnv: (e) => ({ ...e, ...mutualEnv() }) });
    expect(stack.api.output()).toMatch(/"tls":"mutual"/);
    const bot = await addPrincipal(stack, { name: 'tls-bot', kind: 'agent', roles: ['agent'] });
    const id = await decide(stack.url, bot.key, 'tls-bot');
    const receipt = await receiptOf(stack.url, bot.key, id);
    expect(receipt.decision_id ?? receipt.receipt?.decision_id ?? JSON.stringify(receipt)).toContain(id);
  }, 180_000);

  it('an API key and server TLS from a TOML profile (the temporal CLI\'s file): an API and a worker of their own', async () => {
    if (!stack) throw new Error('needs the first case');
    const toml = path.join(dir, 'temporal.toml');
    writeFileSync(toml, [
      '[profile.production]',
      `address = "${keyed}"`,
      'namespace = "default"',
      `api_key = "${apiKey}"`,
      '[profile.production.tls]',
      `server_ca_cert_path = "${pki.ca.cert}"`,
      'server_name = "temporal.test"',
      '',
    ].join('\n'));
    // An empty TEMPORAL_ADDRESS is unset: the profile's address applies.
    const env = { ...stack.env, TEMPORAL_ADDRESS: '', TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'production', COUNTERSIGN_LOG_LEVEL: 'info' };
    // The first stack's worker goes: only the profile's worker can run this task queue's workflows now.
    await stack.worker.stop();
    const worker = await startProcess('worker-api-key', 'services/worker/main.ts', env, /worker started/);
    extra.push(worker);
    const port = String(await freePort());
    const apiProcess = await startProcess('api-api-key', 'services/api/main.ts', { ...env, COUNTERSIGN_PORT: port }, /api listening/);
    extra.push(apiProcess);
    expect(apiProcess.output()).toMatch(/"api_key":true/);
    expect(apiProcess.output()).not.toContain(apiKey);
    expect(worker.output()).not.toContain(apiKey);
    const url = `http://127.0.0.1:${port}`;
    const bot = await addPrincipal(stack, { name: 'toml-bot', kind: 'agent', roles: ['agent'] });
    const id = await decide(url, bot.key, 'toml-bot');
    await receiptOf(url, bot.key, id);
  }, 180_000);

  it('with no, a wrong or an untrusted credential, the API and the worker each refuse to start with one line', async () => {
    // The shared stack's database and keys: a process that refuses never writes to them.
    const shared = stackEnv();
    const base: Record<string, string> = {
      DATABASE_URL: shared.DATABASE_URL, KAFKA_BROKERS: shared.KAFKA_BROKERS, COUNTERSIGN_DATA_DIR: shared.COUNTERSIGN_DATA_DIR,
      COUNTERSIGN_KEYS_DIR: path.join(shared.COUNTERSIGN_DATA_DIR, 'keys'), COUNTERSIGN_TASK_QUEUE: `countersign-tls-refusals-${path.basename(dir)}`,
      COUNTERSIGN_WORKFLOW_BUNDLE: process.env['COUNTERSIGN_WORKFLOW_BUNDLE'] ?? '',
    };
    await loadOrCreateKeyring(base['COUNTERSIGN_KEYS_DIR']!);
    loadAttestationSecret(base['COUNTERSIGN_KEYS_DIR']!);
    const good = mutualEnv();
    const rogue = pki.issue('rogue-client', pki.otherCa, 'DNS:countersign');
    const selfMade = pki.issue('self-made', pki.otherCa, 'DNS:countersign');
    const { TEMPORAL_TLS_CLIENT_CERT_PATH: _c, TEMPORAL_TLS_CLIENT_KEY_PATH: _k, ...noCert } = good;
    const cases: Array<{ what: string; env: Record<string, string>; expect: RegExp }> = [
      { what: 'no client certificate', env: noCert, expect: /HTTP 400/ },
      { what: 'a client certificate of another CA', env: { ...good, TEMPORAL_TLS_CLIENT_CERT_PATH: rogue.cert, TEMPORAL_TLS_CLIENT_KEY_PATH: rogue.key }, expect: /HTTP 400/ },
      { what: 'trusting another CA than the server\'s', env: { ...good, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.otherCa.cert }, expect: /verify|certificate/i },
      { what: 'a server name the certificate does not carry', env: { ...good, TEMPORAL_TLS_SERVER_NAME: 'evil.test' }, expect: /ALTNAME|altnames/ },
      { what: 'plaintext to the TLS port', env: { TEMPORAL_ADDRESS: mtls }, expect: /TEMPORAL_TLS=true/ },
      { what: 'a certificate without its key', env: { ...noCert, TEMPORAL_TLS_CLIENT_CERT_PATH: selfMade.cert }, expect: /needs its key/ },
      { what: 'a wrong API key', env: { TEMPORAL_ADDRESS: keyed, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca.cert, TEMPORAL_TLS_SERVER_NAME: 'temporal.test', TEMPORAL_API_KEY: 'tk_wrong' }, expect: /HTTP 401/ },
      { what: 'no API key', env: { TEMPORAL_ADDRESS: keyed, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca.cert, TEMPORAL_TLS_SERVER_NAME: 'temporal.test' }, expect: /HTTP 401/ },
      { what: 'a namespace that does not exist', env: { ...good, TEMPORAL_NAMESPACE: 'no-such-namespace' }, expect: /not found/ },
    ];
    // The API meets every case; the worker, which makes the same check, the four kinds (client certificate
    // missing or refused, server untrusted, API key refused).
    const workerCases = new Set(['no client certificate', 'a client certificate of another CA', 'trusting another CA than the server\'s', 'a wrong API key']);
    const runs = cases.flatMap((c) => ([['api', 'services/api/main.ts', /api listening/], ['worker', 'services/worker/main.ts', /worker started/]] as const)
      .filter(([name]) => name === 'api' || workerCases.has(c.what))
      .map(([name, entry, ready]) => ({ ...c, name, entry, ready })));
    let attempts = 0;
    let through = 0;
    // Three at a time: each start is mostly loading code.
    const queue = [...runs];
    await Promise.all([0, 1, 2].map(async () => {
      for (let r = queue.shift(); r; r = queue.shift()) {
        const { name, entry, ready } = r;
        const c = r;
        attempts += 1;
        const env = { ...base, TEMPORAL_TLS_SERVER_CA_CERT_PATH: '', TEMPORAL_TLS_SERVER_NAME: '', ...c.env, COUNTERSIGN_PORT: String(await freePort()), COUNTERSIGN_LOG_LEVEL: 'info' };
        let output: string;
        let started = false;
        try {
          const p = await startProcess(`${name} with ${c.what}`, entry, env, ready, 180_000);
          started = true;
          output = p.output();
          await p.stop();
        } catch (err) {
          output = err instanceof Error ? err.message : String(err);
        }
        const lines = output.split('\n').filter((l) => l.includes('refusing to start'));
        const exited = /exited \(1\) before ready/.test(output);
        if (started || !exited || lines.length !== 1 || !c.expect.test(lines[0]!)) {
          through += 1;
          console.log(`${name} with ${c.what}`, { started, exited, lines, output: output.slice(-1500) });
        }
      }
    }));
    console.log(`attack temporal-bad-credentials: ${attempts} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 600_000);
});
