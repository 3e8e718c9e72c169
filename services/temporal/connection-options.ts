import type { TemporalSettings } from './connection-settings.ts';

/**
 * The options every Temporal connection is made with, for the client's `Connection` (API) and the worker's
 * `NativeConnection` alike: one place, so no process connects differently from another.
 */
export function connectionOptions(s: TemporalSettings): { address: string; tls?: TemporalSettings['tls']; apiKey?: string; metadata?: Record<string, string> } {
  return {
    address: s.address,
    ...(s.tls !== undefined ? { tls: s.tls } : {}),
    ...(s.apiKey !== undefined ? { apiKey: s.apiKey } : {}),
    ...(s.metadata !== undefined ? { metadata: s.metadata } : {}),
  };
}
