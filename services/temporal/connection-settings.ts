import { existsSync } from 'node:fs';
import type { TLSConfig } from '@temporalio/client';
import { loadClientConfigProfile, toClientOptions } from '@temporalio/envconfig';

/**
 * How every process reaches Temporal: address, namespace, TLS (server CA, server name, client certificate) and
 * API key, read through the SDK's own environment configuration (`@temporalio/envconfig`), so a deployment
 * configures Countersign exactly as it configures the `temporal` CLI: a TOML profile (`TEMPORAL_CONFIG_FILE`,
 * default `~/.config/temporalio/temporal.toml`, profile `TEMPORAL_PROFILE`) overridden by `TEMPORAL_*` variables.
 */
export type TemporalSettings = {
  address: string;
  namespace: string;
  /** false or undefined: plaintext; true: TLS with the system's roots; an object: TLS as configured. */
  tls?: TLSConfig | boolean;
  apiKey?: string;
  /** gRPC metadata sent with every call (TEMPORAL_GRPC_META_*). */
  metadata?: Record<string, string>;
};

export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_TEMPORAL_NAMESPACE = 'default';

/**
 * Reads the settings from an environment (certificate files are read here, once). Throws one line naming what is
 * wrong: a TEMPORAL_CONFIG_FILE that does not exist (the SDK would silently ignore it), a profile that is not in
 * the file, an unreadable certificate or key, a client certificate without its key.
 */
export function temporalSettings(env: Record<string, string | undefined>): TemporalSettings {
  const vars: Record<string, string> = {};
  // An empty variable is an unset one (compose files and charts often pass empty values through).
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') vars[k] = v;
  const file = vars['TEMPORAL_CONFIG_FILE'];
  if (file !== undefined && !existsSync(file)) throw new Error(`TEMPORAL_CONFIG_FILE: no file at ${file}`);
  let loaded;
  try {
    const profile = loadClientConfigProfile({ overrideEnvVars: vars });
    // The SDK drops a certificate without its key (or a key without its certificate) silently.
    if ((profile.tls?.clientCert === undefined) !== (profile.tls?.clientKey === undefined)) {
      throw new Error('a client certificate needs its key (TEMPORAL_TLS_CLIENT_CERT_PATH with TEMPORAL_TLS_CLIENT_KEY_PATH)');
    }
    loaded = toClientOptions(profile);
  } catch (err) {
    throw new Error(`Temporal connection settings: ${oneLine(err)}`);
  }
  const o = loaded.connectionOptions;
  const settings: TemporalSettings = {
    address: o.address ?? DEFAULT_TEMPORAL_ADDRESS,
    namespace: loaded.namespace ?? DEFAULT_TEMPORAL_NAMESPACE,
  };
  if (o.tls !== undefined && o.tls !== null) settings.tls = o.tls;
  if (o.apiKey !== undefined) {
    if (typeof o.apiKey !== 'string' || o.apiKey === '') throw new Error('TEMPORAL_API_KEY is empty');
    settings.apiKey = o.apiKey;
  }
  if (o.metadata && Object.keys(o.metadata).length > 0) settings.metadata = { ...o.metadata } as Record<string, string>;
  return settings;
}

/** What logs may say about the settings: never the key, the certificates or the metadata values. */
export function describeTemporal(s: TemporalSettings): { address: string; namespace: string; tls: 'off' | 'on' | 'mutual'; api_key: boolean } {
  const tls = s.tls === undefined || s.tls === false ? 'off' : typeof s.tls === 'object' && s.tls.clientCertPair ? 'mutual' : 'on';
  return { address: s.address, namespace: s.namespace, tls, api_key: s.apiKey !== undefined };
}

export function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
}
