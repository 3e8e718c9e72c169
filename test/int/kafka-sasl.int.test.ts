import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOPIC_MAX_MESSAGE_BYTES } from '../../services/events/event-size.ts';
import { ROOT, addPrincipal, api, eventually, freePort, stackEnv, startProcess, startTestStack, type TestStack } from './harness.ts';
import { startSaslBroker } from './kafka-sasl-broker.ts';
import { makeTestPki } from './test-pki.ts';

const { Kafka, logLevel, ConfigResourceTypes } = kafkajs;

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), ...args], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/**
 * Kafka reached the production way: a broker with a SASL_SSL listener (SCRAM-SHA-512 and PLAIN) and an SSL
 * listener that wants a client certificate, its keystore made with keytool. The publisher creates the event topic
 * with its partitions, replication factor, retention and max.message.bytes set explicitly; `audit replay` reads it
 * back over each kind of connection; credentials the broker refuses stop the publisher with one line.
 */
describe('Kafka over SASL_SSL (SCRAM-SHA-512, PLAIN) and mutual TLS', () => {
  const users = { scram: { user: 'countersign-publisher', password: `scram-${Math.random().toString(36).slice(2)}` }, plain: { user: 'countersign-auditor', password: `plain-${Math.random().toString(36).slice(2)}` } };
  let dir: string;
  let broker: Awaited<ReturnType<typeof startSaslBroker>>;
  let sasl: string;
  let ssl: string;
  let stack: TestStack | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'cs-kafka-sasl-'));
    const [saslPort, sslPort, controllerPort] = [await freePort(), await freePort(), await freePort()];
    broker = await startSaslBroker({ dir, saslPort, sslPort, controllerPort, users });
    sasl = `127.0.0.1:${saslPort}`;
    ssl = `127.0.0.1:${sslPort}`;
    // Ten short JVMs (keytool, the storage format): seconds on a quiet machine, minutes on a loaded one.
  }, 600_000);
  afterAll(async () => {
    await stack?.stop();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const scramEnv = () => ({ KAFKA_BROKERS: sasl, KAFKA_SSL_CA_FILE: broker.ca, KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: users.scram.user, KAFKA_SASL_PASSWORD: users.scram.password });
  const plainEnv = () => ({ KAFKA_BROKERS: sasl, KAFKA_SSL_CA_FILE: broker.ca, KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: users.plain.user, KAFKA_SASL_PASSWORD: users.plain.password });
  const mtlsEnv = () => ({ KAFKA_BROKERS: ssl, KAFKA_SSL_CA_FILE: broker.ca, KAFKA_SSL_CERT_FILE: broker.clientCert, KAFKA_SSL_KEY_FILE: broker.clientKey });

  it('the publisher (SCRAM-SHA-512) creates the topic as configured and publishes; replay reads it over PLAIN and over mutual TLS', async () => {
    // The publisher waits for the broker (it starts meanwhile) as it waits out any outage.
    [stack] = await Promise.all([startTestStack({ COUNTERSIGN_KAFKA_PARTITIONS: '2' }, { processEnv: (e) => ({ ...e, ...scramEnv() }) }), broker.ready]);
    expect(stack.publisher.output()).not.toContain(users.scram.password);
    const bot = await addPrincipal(stack, { name: 'sasl-bot', kind: 'agent', roles: ['agent'] });
    const res = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'sasl-bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 120 } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const id = res.body.decision_id as string;

    // The topic the publisher made: partitions, replicas and every retention and size setting explicit.
    const admin = new Kafka({ brokers: [sasl], ssl: { ca: [readFileSync(broker.ca, 'utf8')] }, sasl: { mechanism: 'scram-sha-512', username: users.scram.user, password: users.scram.password }, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const meta = await eventually(async () => (await admin.listTopics()).includes(stack!.topic) ? admin.fetchTopicMetadata({ topics: [stack!.topic] }) : undefined, 60_000, 'the topic');
      expect(meta.topics[0]!.partitions).toHaveLength(2);
      expect(meta.topics[0]!.partitions.every((p) => p.replicas.length === 1)).toBe(true);
      const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: stack.topic }] });
      const cfg = new Map(described.resources[0]!.configEntries.filter((c) => !c.isDefault).map((c) => [c.configName, c.configValue]));
      expect(Object.fromEntries(cfg)).toMatchObject({ 'retention.ms': '-1', 'retention.bytes': '-1', 'max.message.bytes': String(TOPIC_MAX_MESSAGE_BYTES), 'min.insync.replicas': '1' });
    } finally {
      await admin.disconnect();
    }

    for (const [how, env] of [['PLAIN', plainEnv()], ['mutual TLS', mtlsEnv()]] as const) {
      const out = await eventually(async () => {
        const r = await cli(['audit', 'replay', '--from', 'kafka', '--json'], { ...stack!.env, ...env });
        if (r.code !== 0) throw new Error(`${how}: exit ${r.code}: ${r.stderr}`);
        const report = JSON.parse(r.stdout);
        return report.receipts.some((x: { receipt: { decision_id: string } }) => x.receipt.decision_id === id) ? report : undefined;
      }, 60_000, `replay over ${how}`);
      expect(out.divergences, how).toEqual([]);
    }
  }, 300_000);

  it('credentials the broker refuses: the publisher refuses to start with one line, replay reads nothing', async () => {
    await broker.ready;
    // The shared stack's database and keys: a publisher that refuses never reads them.
    const shared = stackEnv();
    const base: Record<string, string> = {
      DATABASE_URL: shared.DATABASE_URL, TEMPORAL_ADDRESS: shared.TEMPORAL_ADDRESS, COUNTERSIGN_DATA_DIR: shared.COUNTERSIGN_DATA_DIR,
      COUNTERSIGN_KEYS_DIR: path.join(shared.COUNTERSIGN_DATA_DIR, 'keys'), COUNTERSIGN_KAFKA_TOPIC: `countersign.test.refusals.${path.basename(dir)}`,
    };
    const otherCa = makeTestPki(dir).otherCa.cert;
    const cases: Array<{ what: string; env: Record<string, string>; expect: RegExp }> = [
      { what: 'a wrong SCRAM password', env: { ...scramEnv(), KAFKA_SASL_PASSWORD: 'wrong' }, expect: /SCRAM.*authentication failed/i },
      { what: 'an unknown SCRAM user', env: { ...scramEnv(), KAFKA_SASL_USERNAME: 'nobody' }, expect: /authentication failed/i },
      { what: 'a wrong PLAIN password', env: { ...plainEnv(), KAFKA_SASL_PASSWORD: 'wrong' }, expect: /PLAIN authentication failed/i },
      { what: 'trusting another CA than the broker\'s', env: { ...scramEnv(), KAFKA_SSL_CA_FILE: otherCa }, expect: /certificate/i },
      { what: 'no client certificate on the mutual TLS listener', env: { KAFKA_BROKERS: ssl, KAFKA_SSL_CA_FILE: broker.ca }, expect: /bad certificate|certificate required|alert/i },
      { what: 'PLAIN without TLS', env: { KAFKA_BROKERS: sasl, KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: users.plain.user, KAFKA_SASL_PASSWORD: users.plain.password }, expect: /in clear/ },
    ];
    const clear = { KAFKA_SSL_CA_FILE: '', KAFKA_SSL_CERT_FILE: '', KAFKA_SSL_KEY_FILE: '', KAFKA_SASL_MECHANISM: '', KAFKA_SASL_USERNAME: '', KAFKA_SASL_PASSWORD: '' };
    let attempts = 0;
    let through = 0;
    const queue = [...cases];
    await Promise.all([0, 1, 2].map(async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        attempts += 2;
        const env = { ...base, ...clear, ...c.env, COUNTERSIGN_LOG_LEVEL: 'info' };
        let output: string;
        let started = false;
        try {
          const p = await startProcess(`publisher with ${c.what}`, 'services/publisher/main.ts', env, /publisher leading|publisher standing by|publishing/, 180_000);
          started = true;
          output = p.output();
          await p.stop();
        } catch (err) {
          output = err instanceof Error ? err.message : String(err);
        }
        const lines = output.split('\n').filter((l) => l.includes('refusing to start'));
        if (started || !/exited \(1\) before ready/.test(output) || lines.length !== 1 || !c.expect.test(lines[0]!) || output.includes(users.scram.password) || output.includes(users.plain.password)) {
          through += 1;
          console.log(`publisher with ${c.what}`, { started, lines, output: output.slice(-1500) });
        }
        const r = await cli(['audit', 'replay', '--from', 'kafka', '--json'], env);
        if (r.code !== 3 || r.stdout.trim() !== '') {
          through += 1;
          console.log(`replay with ${c.what}`, r);
        }
      }
    }));
    console.log(`attack kafka-refused-credentials: ${attempts} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 600_000);
});
