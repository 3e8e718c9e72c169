import path from 'node:path';
import { z } from 'zod';
import { durationSeconds } from '../schemas/duration.ts';
import { kafkaConnection, type KafkaConnection } from './publisher/kafka-settings.ts';
import { oneLine, temporalSettings, type TemporalSettings } from './temporal/connection-settings.ts';
import { createLogger } from './logger.ts';

/** An optional setting for which an empty variable means unset (compose files and charts pass empty values through). */
const optionalEnum = <T extends [string, ...string[]]>(values: T) => z.preprocess((v) => (v === '' ? undefined : v), z.enum(values).optional());

const durationSetting = (def: string) =>
  z.string().default(def).refine((v) => durationSeconds(v) !== undefined, 'expected a duration such as 90s, 30m, 24h, 7d').transform((v) => durationSeconds(v)!);

/**
 * The one typed configuration (style item 11). Parsed once at start-up; nothing else reads process.env.
 * Every field says what it means and its default; the README's configuration table mirrors this.
 */
const ConfigSchema = z.object({
  DATABASE_URL: z.string().url().describe('Postgres URL of the application role (read and append only). TLS through its parameters, as libpq spells them: sslmode=verify-full&sslrootcert=/path/ca.pem (and sslcert, sslkey for a client certificate). Default: the local cluster from `make up`.'),
  COUNTERSIGN_PG_POOL_MAX: z.coerce.number().int().min(1).max(1_000).optional().describe('Most pooled Postgres connections of each process. Default: 20 for the API, 10 for the worker, 2 for the publisher. Each process also holds one or two connections of its own for notifications (LISTEN) and, in the publisher, the leadership lock.'),
  DATABASE_ADMIN_URL: z.string().url().optional().describe('Postgres URL of the schema owner, used for migrations. Default: DATABASE_URL.'),
  // Temporal: read through the SDK's environment configuration (services/temporal/connection-settings.ts), which
  // also reads TEMPORAL_TLS_*_DATA and TEMPORAL_GRPC_META_*; listed here so each is documented.
  TEMPORAL_ADDRESS: z.string().optional().describe('Temporal frontend host:port. Default: the profile\'s address, else 127.0.0.1:7233.'),
  TEMPORAL_NAMESPACE: z.string().optional().describe('Temporal namespace. Default: the profile\'s namespace, else default.'),
  TEMPORAL_CONFIG_FILE: z.string().optional().describe('TOML file of Temporal connection profiles, as the temporal CLI reads it. Default: ~/.config/temporalio/temporal.toml when it exists.'),
  TEMPORAL_PROFILE: z.string().optional().describe('Profile of TEMPORAL_CONFIG_FILE to use. Default: default.'),
  TEMPORAL_API_KEY: z.string().optional().describe('API key sent to Temporal as a bearer token; turns TLS on. Default: none.'),
  TEMPORAL_TLS: optionalEnum(['true', 'false', '1', '0']).describe('TLS to Temporal on or off. Default: on when any TEMPORAL_TLS_* setting or an API key is given.'),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string().optional().describe('PEM file of the CA that signs the Temporal server (or TLS proxy) certificate. Default: the system roots.'),
  TEMPORAL_TLS_SERVER_NAME: z.string().optional().describe('Name the Temporal server certificate must carry. Default: the host of TEMPORAL_ADDRESS.'),
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string().optional().describe('PEM client certificate for mutual TLS (with TEMPORAL_TLS_CLIENT_KEY_PATH). Default: none.'),
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string().optional().describe('PEM private key of TEMPORAL_TLS_CLIENT_CERT_PATH. Default: none.'),
  COUNTERSIGN_TASK_QUEUE: z.string().default('countersign-decisions').describe('Task queue of the decision workflows.'),
  KAFKA_BROKERS: z.string().default('127.0.0.1:9092').describe('Comma-separated Kafka bootstrap brokers.'),
  KAFKA_SSL: optionalEnum(['true', 'false']).describe('TLS to the Kafka brokers. Default: on when any KAFKA_SSL_* file is given, else off.'),
  KAFKA_SSL_CA_FILE: z.string().optional().describe('PEM file of the CA that signs the brokers\' certificates. Default: the system roots.'),
  KAFKA_SSL_CERT_FILE: z.string().optional().describe('PEM client certificate for mutual TLS with the brokers (with KAFKA_SSL_KEY_FILE). Default: none.'),
  KAFKA_SSL_KEY_FILE: z.string().optional().describe('PEM private key of KAFKA_SSL_CERT_FILE. Default: none.'),
  KAFKA_SASL_MECHANISM: optionalEnum(['plain', 'scram-sha-256', 'scram-sha-512']).describe('SASL mechanism for the brokers (plain only over TLS). Default: none.'),
  KAFKA_SASL_USERNAME: z.string().optional().describe('SASL user name. Default: none.'),
  KAFKA_SASL_PASSWORD: z.string().optional().describe('SASL password. Default: none.'),
  COUNTERSIGN_KAFKA_PARTITIONS: z.coerce.number().int().min(1).max(10_000).default(3).describe('Partitions the event topic is created with (each stream stays in one partition, by its key). Never changed on an existing topic: that would move streams between partitions.'),
  COUNTERSIGN_KAFKA_REPLICATION_FACTOR: z.coerce.number().int().min(1).max(16).default(1).describe('Replication factor the event topic is created with (3 on a production cluster); min.insync.replicas is set to one less (at least 1).'),
  COUNTERSIGN_KAFKA_TOPIC: z.string().regex(/^[A-Za-z0-9._-]+$/).default('countersign.events').describe('Topic the publisher writes every event to, keyed by stream id.'),
  COUNTERSIGN_HOST: z.string().default('127.0.0.1').describe('Address the HTTP API binds to.'),
  COUNTERSIGN_PORT: z.coerce.number().int().min(0).max(65535).default(8080).describe('Port of the HTTP API.'),
  COUNTERSIGN_PUBLIC_URL: z.string().url().optional().describe('Base URL that people and agents reach the API at. Default: http://HOST:PORT.'),
  COUNTERSIGN_DATA_DIR: z.string().default(path.resolve(import.meta.dirname, '..', '.data')).describe('Where generated state lives (keys, local clusters, logs).'),
  COUNTERSIGN_KEYS_DIR: z.string().optional().describe('Directory of the receipt signing keyring. Default: DATA_DIR/keys.'),
  COUNTERSIGN_DEFAULT_TENANT: z.string().default('default').describe('Tenant created on first start, owner of the bootstrap key.'),
  COUNTERSIGN_BOOTSTRAP_KEY_FILE: z.string().optional().describe('Where the bootstrap admin key is written once. Default: DATA_DIR/bootstrap-key.'),
  COUNTERSIGN_PUBLISH_BATCH: z.coerce.number().int().min(1).max(10_000).default(500).describe('Events per publisher batch.'),
  COUNTERSIGN_PUBLISH_IDLE_MS: z.coerce.number().int().min(1).max(60_000).default(50).describe('Publisher poll interval when idle, ms.'),
  COUNTERSIGN_PUBLISH_LINGER_MS: z.coerce.number().int().min(0).max(10_000).default(100).describe('After sending all that was waiting, how long the publisher lets events gather before it reads again, ms: fewer, larger Kafka transactions (their cost is per transaction) for at most this much more delay. 0: read again at once.'),
  COUNTERSIGN_ATTESTATION_SECRET: z.string().min(32).optional().describe('Secret the API and worker share to vouch for approvals sent into workflows. Default: generated once into KEYS_DIR/attestation.secret.'),
  COUNTERSIGN_OVERRIDE_WINDOW: durationSetting('24h').describe('How long after a DENY the agent may ask for an override.'),
  COUNTERSIGN_OVERRIDE_GROUPS: z.string().default('admins').describe('Comma-separated approver groups that decide override requests.'),
  COUNTERSIGN_OVERRIDE_TIMEOUT: durationSetting('24h').describe('How long an override request waits for an answer before it is denied.'),
  COUNTERSIGN_CONSOLE_IDLE: durationSetting('30m').describe('A console session ends after this long without a request.'),
  COUNTERSIGN_CONSOLE_MAX_AGE: durationSetting('12h').describe('A console session ends this long after sign-in, however active.'),
  COUNTERSIGN_CONSOLE_LINK_TTL: durationSetting('5m').describe('A one-time console sign-in link (countersign login --web) is good for this long, and for one use.'),
  COUNTERSIGN_AUDIT_REPLAY_INTERVAL: durationSetting('1m').describe('A tenant may run one audit replay through the API (POST /v1/audit/replays) per this interval.'),
  COUNTERSIGN_OUTCOME_WINDOW: durationSetting('24h').describe('How long after a final decision the agent may report the outcome.'),
  COUNTERSIGN_CALLBACK_ALLOW_PRIVATE: z.enum(['true', 'false']).default('false').transform((v) => v === 'true').describe('Allow callback URLs that resolve to private, loopback or other non-public addresses (development only). Read by the API, which checks callback_url when a decision is asked for, and by the worker, which checks it again when it delivers.'),
  COUNTERSIGN_EVALUATOR_ALLOW_HOSTS: z.string().default('').transform((v) => v.split(',').map((h) => h.trim()).filter((h) => h !== '')).describe("Comma-separated hosts (host or host:port) whose judgment-rule evaluator URLs may resolve to private or loopback addresses (an operator's own model server). Every other evaluator URL is checked like a callback URL. Read by the API (when a tenant sets its evaluator) and by the worker (each time it asks)."),
  COUNTERSIGN_WORKFLOW_BUNDLE: z.string().optional().describe('Prebuilt workflow bundle (services/worker/bundle.ts); without it the worker bundles at start-up.'),
  COUNTERSIGN_CRASH_AT: z.enum(['after-append-commit', 'after-answer-commit', 'after-some-append-commits', 'after-workflow-start', 'after-slack-ack', 'after-kafka-commit']).optional().describe('Test only: kill the worker at this point to prove retries write nothing twice.'),
  COUNTERSIGN_RATE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(600).describe('Requests per principal (all of its keys together, counted once the key is verified) per rate window, and as many per client address for requests without a valid key (anonymous ones, failed authentications and key lookups that need Postgres); more get 429 with Retry-After. Counted in Postgres, shared by every API process on the database (in each process’s memory only while Postgres does not answer).'),
  COUNTERSIGN_TRUST_PROXY: z.string().default('false').refine((v) => trustProxySetting(v) !== undefined, 'expected false, true, a number of proxy hops, or comma-separated proxy addresses or CIDR ranges')
    .transform((v) => trustProxySetting(v)!)
    .describe('Which X-Forwarded-For entries name the client address that anonymous requests and failed authentications are counted by: false (the default: the connecting address), a number of proxy hops in front of the API, or the comma-separated addresses or CIDR ranges of trusted proxies; true trusts every hop (only when nothing but the proxy can reach the API).'),
  COUNTERSIGN_RATE_WINDOW_MS: z.coerce.number().int().min(1_000).max(3_600_000).default(60_000).describe('Length of the rate window, ms.'),
  COUNTERSIGN_SLACK_SIGNING_SECRET: z.string().min(1).optional().describe('Signing secret of the Slack app: verifies every request to /v1/slack/interactions. Without it that route refuses everything.'),
  COUNTERSIGN_SLACK_BOT_TOKEN: z.string().min(1).optional().describe('Bot token (xoxb-…) the worker posts approval messages with and the API updates them with. Without it nothing is sent to Slack.'),
  COUNTERSIGN_SLACK_API_URL: z.string().url().default('https://slack.com/api/').describe("Base URL of Slack's Web API (a local stand-in in tests)."),
  COUNTERSIGN_SMTP_URL: z.string().url().optional().describe('SMTP server the worker sends approval emails through (smtp:// or smtps://, credentials in the URL). Without it no email is sent.'),
  COUNTERSIGN_MAIL_FROM: z.string().default('Countersign <countersign@localhost>').describe('From address of approval emails.'),
  COUNTERSIGN_REMIND_BEFORE: z.string().default('25%').refine((v) => v === 'off' || /^(?:[1-9]|[1-9]\d)%$/.test(v) || durationSeconds(v) !== undefined, 'expected off, a percentage such as 25%, or a duration such as 15m')
    .describe('When approvers who have not answered get a reminder, on the channels they were notified on: this long before each deadline of a round (a duration such as 15m, or a percentage of the time the round or its escalation level was given, such as 25%), or off.'),
  COUNTERSIGN_NOTIFY_CAP: z.coerce.number().int().min(1).max(10_000).default(10).describe('Most Slack messages (and, separately, emails) one approver gets per cap window; the ones over it are held back and sent together as one digest when the window allows.'),
  COUNTERSIGN_NOTIFY_CAP_WINDOW: durationSetting('1h').describe('The window of COUNTERSIGN_NOTIFY_CAP (a sliding window, counted in Postgres).'),
  COUNTERSIGN_PUBLISHER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional().describe('Port the publisher serves GET /metrics (among them countersign_publisher_lag_events), /healthz and /readyz on (on COUNTERSIGN_HOST). Default: none (the publisher serves nothing).'),
  COUNTERSIGN_WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional().describe('Port the worker serves its Prometheus metrics on (GET /metrics, on COUNTERSIGN_HOST), among them countersign_worker_refused_starts_total. GET /healthz and GET /readyz (Postgres and Temporal) are served there too. Default: none (the worker serves nothing).'),
  // OpenTelemetry: the standard variables (services/telemetry/tracing.ts). The SDK reads the others it knows
  // itself (OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, ...).
  OTEL_EXPORTER_OTLP_ENDPOINT: z.preprocess((v) => (v === '' ? undefined : v), z.string().url().optional()).describe('Base URL of the OTLP/HTTP receiver traces are sent to (traces go to its /v1/traces). Without it (and without OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) no process exports traces, at no cost. Default: none.'),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.preprocess((v) => (v === '' ? undefined : v), z.string().url().optional()).describe('Full URL traces are sent to, instead of OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces. Default: none.'),
  OTEL_EXPORTER_OTLP_PROTOCOL: optionalEnum(['http/protobuf', 'http/json']).describe('OTLP encoding over HTTP: http/protobuf or http/json (gRPC is not offered). Default: http/protobuf.'),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: optionalEnum(['http/protobuf', 'http/json']).describe('OTLP encoding of traces, instead of OTEL_EXPORTER_OTLP_PROTOCOL. Default: that.'),
  OTEL_SDK_DISABLED: optionalEnum(['true', 'false']).describe('true turns tracing off whatever else is set. Default: false.'),
  OTEL_TRACES_EXPORTER: optionalEnum(['otlp', 'none']).describe('none turns tracing off. Default: otlp (when an endpoint is set).'),
  OTEL_SERVICE_NAME: z.preprocess((v) => (v === '' ? undefined : v), z.string().optional()).describe('service.name of the spans. Default: countersign-api, countersign-worker or countersign-publisher.'),
  COUNTERSIGN_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Log level of the API, worker and publisher.'),
});

/** COUNTERSIGN_TRUST_PROXY as Fastify's trustProxy option, or undefined when it is not a valid setting. */
export function trustProxySetting(v: string): boolean | number | string[] | undefined {
  const t = v.trim();
  if (t === 'false' || t === '') return false;
  if (t === 'true') return true;
  if (/^\d{1,2}$/.test(t)) return Number(t);
  const list = t.split(',').map((x) => x.trim()).filter(Boolean);
  const address = /^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)(?:\/\d{1,3})?$/;
  return list.length > 0 && list.every((x) => address.test(x)) ? list : undefined;
}

export type Config = Omit<z.infer<typeof ConfigSchema>, 'TEMPORAL_ADDRESS' | 'TEMPORAL_NAMESPACE'> & {
  TEMPORAL_ADDRESS: string;
  TEMPORAL_NAMESPACE: string;
  /** How to reach Kafka (brokers, TLS, SASL): the publisher and audit replay connect with exactly this. */
  kafka: KafkaConnection;
  /** How to reach Temporal (address, namespace, TLS, API key): every process connects with exactly this. */
  temporal: TemporalSettings;
  keysDir: string;
  publicUrl: string;
  bootstrapKeyFile: string;
  adminDatabaseUrl: string;
};
export const CONFIG_FIELDS = ConfigSchema.shape;

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = ConfigSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  let temporal: TemporalSettings;
  let kafka: KafkaConnection;
  try {
    temporal = temporalSettings(env);
    kafka = kafkaConnection(c);
  } catch (err) {
    throw new Error(`invalid configuration:\n  ${oneLine(err)}`);
  }
  return {
    ...c,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: temporal.namespace,
    temporal,
    kafka,
    adminDatabaseUrl: c.DATABASE_ADMIN_URL ?? c.DATABASE_URL,
    keysDir: c.COUNTERSIGN_KEYS_DIR ?? path.join(c.COUNTERSIGN_DATA_DIR, 'keys'),
    publicUrl: c.COUNTERSIGN_PUBLIC_URL ?? `http://${c.COUNTERSIGN_HOST}:${c.COUNTERSIGN_PORT}`,
    bootstrapKeyFile: c.COUNTERSIGN_BOOTSTRAP_KEY_FILE ?? path.join(c.COUNTERSIGN_DATA_DIR, 'bootstrap-key'),
  };
}

/**
 * loadConfig for a process's start: a configuration that does not parse (or names a certificate file that cannot
 * be read) ends the process with one line on stderr, never a stack trace.
 */
export function loadConfigOrExit(env: Record<string, string | undefined> = process.env, component = 'config'): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    createLogger(component)('error', `refusing to start: ${oneLine(err)}`);
    process.exit(1);
  }
}
