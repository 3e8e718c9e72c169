import path from 'node:path';
import type { Command } from 'commander';
import type { ApiKeyView } from '../../../schemas/identity.ts';
import { rotateKeyring } from '../../receipts/keyring.ts';
import { pages, print, record, run, transport } from './remote.ts';

/** The deployment's keys directory, as the processes find it (COUNTERSIGN_KEYS_DIR, else DATA_DIR/keys). */
function keysDirFromEnv(): string {
  return process.env['COUNTERSIGN_KEYS_DIR'] ?? path.join(process.env['COUNTERSIGN_DATA_DIR'] ?? path.resolve(import.meta.dirname, '..', '..', '.data'), 'keys');
}

/** `countersign keys …`: API keys, and the rotation of the deployment's receipt-signing key (public halves at GET /v1/keys). */
export function registerKeyCommands(program: Command): void {
  const keys = program.command('keys').description('API keys: yours, or (admins) any member’s. Shown in full once, at creation.');

  keys
    .command('create')
    .description('Create an API key; it is printed once and cannot be shown again.')
    .option('--principal <id>', 'for this member (admins); default: yourself')
    .option('--name <name>', 'a label', '')
    .option('--expires <iso>', 'expiry (ISO-8601); default never')
    .option('--json', 'print JSON')
    .action((opts: { principal?: string; name: string; expires?: string; json?: boolean }) => run(async () => {
      const body = { name: opts.name, ...(opts.principal ? { principal_id: opts.principal } : {}), ...(opts.expires ? { expires_at: opts.expires } : {}) };
      const created = await transport().request<ApiKeyView & { api_key: string }>('POST', '/v1/api-keys', body, { retry: false });
      if (opts.json) return record(true, created);
      process.stdout.write(`${created.api_key}\n`);
      process.stderr.write(`key ${created.id} (prefix ${created.prefix}) for ${created.principal_id}: store it now, it is not shown again\n`);
    }));

  keys
    .command('list')
    .description('List API keys (prefixes only).')
    .option('--principal <id>', 'only this member’s')
    .option('--limit <n>', 'per page', '50')
    .option('--all', 'every page')
    .option('--json', 'print JSON')
    .action((opts: { principal?: string; limit: string; all?: boolean; json?: boolean }) => run(async () => {
      const items = await pages<ApiKeyView>(transport(), '/v1/api-keys', { principal_id: opts.principal, limit: opts.limit }, opts.all);
      print(opts.json, items, items, ['id', 'prefix', 'name', 'principal_id', 'status', 'created_at', 'expires_at']);
    }));

  keys
    .command('rotate')
    .description('Rotate the deployment\'s signing key in its keys directory: a new active key; the old one is retired (still verifies, never signs again once each API and worker has restarted).')
    .option('--dir <path>', 'the keys directory every process reads (default: COUNTERSIGN_KEYS_DIR, else COUNTERSIGN_DATA_DIR/keys)')
    .option('--json', 'print JSON')
    .action((opts: { dir?: string; json?: boolean }) => run(async () => {
      const dir = opts.dir ?? keysDirFromEnv();
      const ring = await rotateKeyring(dir);
      const retired = ring.publicKeys().keys.filter((k) => k.status === 'retired').map((k) => k.kid);
      record(opts.json, { keys_dir: dir, active_key_id: ring.activeKeyId, retired_key_ids: retired, next: 'restart each API and worker (one at a time) so they sign with the new key' });
    }));

  keys
    .command('revoke <id>')
    .description('Revoke an API key at once (the record stays).')
    .option('--json', 'print JSON')
    .action((id: string, opts: { json?: boolean }) => run(async () => {
      record(opts.json, await transport().request<ApiKeyView>('DELETE', `/v1/api-keys/${encodeURIComponent(id)}`));
    }));
}
