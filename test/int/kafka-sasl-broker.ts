import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import path from 'node:path';

/** Where services/stack/stack.sh caches the Kafka jars (fetched from Maven Central by `make up`/`make test`). */
function kafkaLibs(): string {
  const cache = process.env['COUNTERSIGN_CACHE_DIR'] ?? path.join(process.env['XDG_CACHE_HOME'] ?? path.join(homedir(), '.cache'), 'countersign');
  const libs = path.join(cache, 'kafka-3.9.1', 'libs');
  if (!existsSync(libs)) throw new Error(`no Kafka jars at ${libs}: run make up or make test once (services/stack/stack.sh fetches them)`);
  return libs;
}

export type SaslBrokerUsers = { scram: { user: string; password: string }; plain: { user: string; password: string } };

/**
 * A second single-node Kafka (KRaft), configured the way a managed Kafka is reached: a SASL_SSL listener
 * (PLAIN and SCRAM-SHA-512; the SCRAM user made at format time with `--add-scram`) and an SSL listener that wants
 * a client certificate. Its keystore and truststore are made with keytool, from a CA of its own whose PEM the
 * clients trust; `clientCert`/`clientKey` are a client certificate that CA signed (the key made with openssl).
 */
export async function startSaslBroker(opts: { dir: string; saslPort: number; sslPort: number; controllerPort: number; users: SaslBrokerUsers }): Promise<{ ca: string; clientCert: string; clientKey: string; ready: Promise<void>; stop: () => Promise<void>; log: () => string }> {
  const d = opts.dir;
  mkdirSync(path.join(d, 'logs'), { recursive: true });
  const pass = 'kafka-test-store';
  const keytool = (...args: string[]) => execFileSync('keytool', [...args, '-storepass', pass, '-noprompt'], { cwd: d, stdio: ['ignore', 'pipe', 'pipe'] });
  const ca = path.join(d, 'kafka-ca.pem');
  keytool('-genkeypair', '-alias', 'ca', '-keyalg', 'EC', '-groupname', 'secp256r1', '-dname', 'CN=kafka test CA', '-ext', 'bc:c', '-validity', '2', '-keystore', 'ca.p12', '-storetype', 'PKCS12');
  keytool('-exportcert', '-rfc', '-alias', 'ca', '-keystore', 'ca.p12', '-file', ca);
  keytool('-genkeypair', '-alias', 'broker', '-keyalg', 'EC', '-groupname', 'secp256r1', '-dname', 'CN=localhost', '-validity', '2', '-keystore', 'broker.p12', '-storetype', 'PKCS12');
  keytool('-certreq', '-alias', 'broker', '-keystore', 'broker.p12', '-file', 'broker.csr');
  keytool('-gencert', '-alias', 'ca', '-keystore', 'ca.p12', '-infile', 'broker.csr', '-outfile', 'broker.pem', '-rfc', '-ext', 'SAN=ip:127.0.0.1,dns:localhost', '-validity', '2');
  keytool('-importcert', '-alias', 'ca', '-file', ca, '-keystore', 'broker.p12');
  keytool('-importcert', '-alias', 'broker', '-file', 'broker.pem', '-keystore', 'broker.p12');
  keytool('-importcert', '-alias', 'ca', '-file', ca, '-keystore', 'trust.p12', '-storetype', 'PKCS12');
  // The client's key in PEM (what a Node client loads), signed by the same CA through keytool.
  const clientKey = path.join(d, 'kafka-client.key');
  const clientCert = path.join(d, 'kafka-client.pem');
  execFileSync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', clientKey, '-out', path.join(d, 'client.csr'), '-subj', '/CN=countersign-publisher'], { stdio: ['ignore', 'ignore', 'pipe'] });
  keytool('-gencert', '-alias', 'ca', '-keystore', 'ca.p12', '-infile', 'client.csr', '-outfile', clientCert, '-rfc', '-validity', '2');

  const { scram, plain } = opts.users;
  const props = path.join(d, 'server.properties');
  writeFileSync(props, [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${opts.controllerPort}`,
    `listeners=SASL_SSL://127.0.0.1:${opts.saslPort},SSL://127.0.0.1:${opts.sslPort},CONTROLLER://127.0.0.1:${opts.controllerPort}`,
    `advertised.listeners=SASL_SSL://127.0.0.1:${opts.saslPort},SSL://127.0.0.1:${opts.sslPort}`,
    'controller.listener.names=CONTROLLER',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL',
    'inter.broker.listener.name=SASL_SSL',
    'sasl.mechanism.inter.broker.protocol=PLAIN',
    'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512',
    `listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="broker-secret" user_broker="broker-secret" user_${plain.user}="${plain.password}";`,
    'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
    'listener.name.ssl.ssl.client.auth=required',
    `ssl.keystore.location=${path.join(d, 'broker.p12')}`,
    'ssl.keystore.type=PKCS12',
    `ssl.keystore.password=${pass}`,
    `ssl.key.password=${pass}`,
    `ssl.truststore.location=${path.join(d, 'trust.p12')}`,
    'ssl.truststore.type=PKCS12',
    `ssl.truststore.password=${pass}`,
    `log.dirs=${path.join(d, 'logs')}`,
    'num.partitions=1',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    'auto.create.topics.enable=false',
    'message.max.bytes=4194304',
    'replica.fetch.max.bytes=4194304',
    '',
  ].join('\n'));
  writeFileSync(path.join(d, 'log4j.properties'), 'log4j.rootLogger=WARN, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\nlog4j.appender.stdout.layout=org.apache.log4j.PatternLayout\nlog4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\nlog4j.logger.kafka.server.KafkaRaftServer=INFO\n');
  const java = (main: string, ...args: string[]) => ['-Xms128m', '-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Djava.awt.headless=true', `-Dlog4j.configuration=file:${path.join(d, 'log4j.properties')}`, '-cp', `${kafkaLibs()}/*`, main, ...args];
  execFileSync('java', java('kafka.tools.StorageTool', 'format', '-t', 'Q2xM5pX8TzKd7wGZ3yU1hA', '-c', props, '--add-scram', `SCRAM-SHA-512=[name=${scram.user},password=${scram.password}]`), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const child: ChildProcess = spawn('java', java('kafka.Kafka', props), { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const open = (port: number) => new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
  // Answered at once: the caller starts what needs the broker's files while the broker starts.
  const ready = (async () => {
    const deadline = Date.now() + 120_000;
    while (!(/Kafka Server started/.test(out) && (await open(opts.saslPort)))) {
      if (child.exitCode !== null) throw new Error(`the SASL_SSL broker exited: ${out.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`the SASL_SSL broker did not start: ${out.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  ready.catch(() => {});
  return {
    ready,
    ca,
    clientCert,
    clientKey,
    log: () => out,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}
