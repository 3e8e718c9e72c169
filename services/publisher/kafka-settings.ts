import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { SASLOptions } from 'kafkajs';

/**
 * How the publisher and `audit replay` reach Kafka: TLS (a CA for the brokers' certificates, a client certificate
 * for mutual TLS) and SASL (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512), as a managed Kafka wants them. Files are read
 * once, when the configuration is loaded.
 */
export type KafkaConnection = {
  brokers: string[];
  /** undefined: plaintext; true: TLS with the system's roots; an object: TLS as configured. */
  ssl?: ConnectionOptions | true;
  sasl?: SASLOptions;
};

export type KafkaConnectionEnv = {
  KAFKA_BROKERS: string;
  KAFKA_SSL?: string | undefined;
  KAFKA_SSL_CA_FILE?: string | undefined;
  KAFKA_SSL_CERT_FILE?: string | undefined;
  KAFKA_SSL_KEY_FILE?: string | undefined;
  KAFKA_SASL_MECHANISM?: string | undefined;
  KAFKA_SASL_USERNAME?: string | undefined;
  KAFKA_SASL_PASSWORD?: string | undefined;
};

function read(name: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${name}: cannot read ${file} (${(err as { code?: string }).code ?? String(err)})`);
  }
}

/** Throws one line naming the setting that is wrong. */
export function kafkaConnection(env: KafkaConnectionEnv): KafkaConnection {
  // An empty variable is an unset one (compose files and charts often pass empty values through).
  const c = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')) as KafkaConnectionEnv;
  const brokers = (c.KAFKA_BROKERS ?? '').split(',').map((b) => b.trim()).filter(Boolean);
  if (brokers.length === 0) throw new Error('KAFKA_BROKERS: no broker');
  const files = c.KAFKA_SSL_CA_FILE !== undefined || c.KAFKA_SSL_CERT_FILE !== undefined || c.KAFKA_SSL_KEY_FILE !== undefined;
  if (c.KAFKA_SSL === 'false' && files) throw new Error('KAFKA_SSL=false contradicts the KAFKA_SSL_* files that are set');
  if ((c.KAFKA_SSL_CERT_FILE === undefined) !== (c.KAFKA_SSL_KEY_FILE === undefined)) throw new Error('KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (a client certificate needs its key)');
  const tlsOn = c.KAFKA_SSL === 'true' || (c.KAFKA_SSL === undefined && files);
  const out: KafkaConnection = { brokers };
  if (tlsOn) {
    const ssl: ConnectionOptions = {};
    if (c.KAFKA_SSL_CA_FILE !== undefined) ssl.ca = [read('KAFKA_SSL_CA_FILE', c.KAFKA_SSL_CA_FILE)];
    if (c.KAFKA_SSL_CERT_FILE !== undefined && c.KAFKA_SSL_KEY_FILE !== undefined) {
      ssl.cert = read('KAFKA_SSL_CERT_FILE', c.KAFKA_SSL_CERT_FILE);
      ssl.key = read('KAFKA_SSL_KEY_FILE', c.KAFKA_SSL_KEY_FILE);
    }
    out.ssl = Object.keys(ssl).length > 0 ? ssl : true;
  }
  const m = c.KAFKA_SASL_MECHANISM;
  if (m === undefined) {
    if (c.KAFKA_SASL_USERNAME !== undefined || c.KAFKA_SASL_PASSWORD !== undefined) throw new Error('KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD are set without KAFKA_SASL_MECHANISM');
    return out;
  }
  if (m !== 'plain' && m !== 'scram-sha-256' && m !== 'scram-sha-512') throw new Error('KAFKA_SASL_MECHANISM: expected plain, scram-sha-256 or scram-sha-512');
  if (!c.KAFKA_SASL_USERNAME || !c.KAFKA_SASL_PASSWORD) throw new Error(`KAFKA_SASL_MECHANISM=${m} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD`);
  // PLAIN sends the password as it is: only inside TLS.
  if (m === 'plain' && !tlsOn) throw new Error('KAFKA_SASL_MECHANISM=plain sends the password in clear: turn TLS on (KAFKA_SSL=true)');
  out.sasl = { mechanism: m, username: c.KAFKA_SASL_USERNAME, password: c.KAFKA_SASL_PASSWORD };
  return out;
}

/** What logs may say about the connection: never the password or the key. */
export function describeKafka(k: KafkaConnection): { brokers: string[]; tls: 'off' | 'on' | 'mutual'; sasl: string } {
  const tls = k.ssl === undefined ? 'off' : typeof k.ssl === 'object' && k.ssl.cert ? 'mutual' : 'on';
  return { brokers: k.brokers, tls, sasl: k.sasl ? `${k.sasl.mechanism} as ${(k.sasl as { username: string }).username}` : 'none' };
}
