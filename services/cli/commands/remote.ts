import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { CountersignApiError, CountersignNetworkError } from '../../sdk/errors.ts';
import { Transport } from '../../sdk/transport.ts';
import { EXIT } from '../exit-codes.ts';

/**
 * How the remote commands (decisions, approvals, keys, tenants, principals) reach the API: COUNTERSIGN_URL and
 * COUNTERSIGN_API_KEY, else the file `countersign login` wrote (~/.config/countersign/config.json, 0600).
 * The CLI runs on laptops without the server's configuration, so this is its own small schema.
 */
const ClientEnv = z.object({
  COUNTERSIGN_URL: z.string().url().optional(),
  COUNTERSIGN_API_KEY: z.string().min(1).optional(),
  COUNTERSIGN_CONFIG: z.string().optional(),
  XDG_CONFIG_HOME: z.string().optional(),
});
const ConfigFile = z.object({ url: z.string().url(), api_key: z.string().min(1) });
export type ClientConfig = z.infer<typeof ConfigFile>;

export function configPath(env: Record<string, string | undefined> = process.env): string {
  const e = ClientEnv.parse(env);
  return e.COUNTERSIGN_CONFIG ?? path.join(e.XDG_CONFIG_HOME ?? path.join(homedir(), '.config'), 'countersign', 'config.json');
}

export function loadClientConfig(env: Record<string, string | undefined> = process.env): ClientConfig {
  const e = ClientEnv.parse(env);
  let file: Partial<ClientConfig> = {};
  try {
    file = ConfigFile.partial().parse(JSON.parse(readFileSync(configPath(env), 'utf8')));
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw new Error(`${configPath(env)} is not a valid config file; run countersign login again`);
  }
  const url = e.COUNTERSIGN_URL ?? file.url;
  const apiKey = e.COUNTERSIGN_API_KEY ?? file.api_key;
  if (!url || !apiKey) throw new UsageError('not logged in: set COUNTERSIGN_URL and COUNTERSIGN_API_KEY, or run `countersign login`');
  return { url, api_key: apiKey };
}

export function saveClientConfig(config: ClientConfig, env: Record<string, string | undefined> = process.env): string {
  const file = configPath(env);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600); // an existing file keeps its old mode on write
  return file;
}

export class UsageError extends Error {}

export function transport(config: ClientConfig = loadClientConfig()): Transport {
  return new Transport({ url: config.url, apiKey: config.api_key });
}

/** Runs a command body; API problems become a message and an exit code, never a stack trace. */
export async function run(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof CountersignApiError) {
      process.stderr.write(`countersign: ${err.status} ${err.code}: ${err.problem.detail ?? ''}\n`);
      for (const e of err.problem.errors ?? []) process.stderr.write(`  ${e.path}: ${e.message}\n`);
      process.exitCode = err.status >= 500 ? EXIT.unavailable : EXIT.failed;
    } else if (err instanceof CountersignNetworkError) {
      process.stderr.write(`countersign: ${err.message}\n`);
      process.exitCode = EXIT.unavailable;
    } else if (err instanceof UsageError) {
      process.stderr.write(`countersign: ${err.message}\n`);
      process.exitCode = EXIT.usage;
    } else {
      throw err;
    }
  }
}

/** --json prints the API's answer as it is; otherwise a table of the chosen columns. */
export function print(json: boolean | undefined, value: unknown, rows?: Array<Record<string, unknown>>, columns?: string[]): void {
  if (json || !rows || !columns) {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    return;
  }
  process.stdout.write(table(rows, columns));
}

export function table(rows: Array<Record<string, unknown>>, columns: string[]): string {
  const cell = (v: unknown): string => (v === null || v === undefined ? '-' : Array.isArray(v) ? v.map(cell).join(',') : typeof v === 'string' ? v : JSON.stringify(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => (i === vals.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd();
  const out = [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))];
  if (rows.length === 0) out.push('(none)');
  return `${out.join('\n')}\n`;
}

/** A single-record view: one `field  value` line each. */
export function record(json: boolean | undefined, value: Record<string, unknown>): void {
  if (json) return print(true, value);
  const width = Math.max(...Object.keys(value).map((k) => k.length));
  for (const [k, v] of Object.entries(value)) {
    process.stdout.write(`${k.padEnd(width)}  ${typeof v === 'string' ? v : JSON.stringify(v)}\n`);
  }
}

export const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);

/** Pages through a list endpoint: one page, or every page with --all. */
export async function pages<T>(t: Transport, route: string, query: Record<string, string | number | undefined>, all: boolean | undefined): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await t.request<{ items: T[]; next_cursor: string | null }>('GET', route, undefined, { query: { ...query, cursor } });
    items.push(...page.items);
    cursor = page.next_cursor ?? undefined;
  } while (all && cursor);
  return items;
}
