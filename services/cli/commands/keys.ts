import type { Command } from 'commander';
import type { ApiKeyView } from '../../../schemas/identity.ts';
import { pages, print, record, run, transport } from './remote.ts';

/** `countersign keys …`: API keys (the public receipt-signing keys are at GET /v1/keys, not here). */
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
    .command('revoke <id>')
    .description('Revoke an API key at once (the record stays).')
    .option('--json', 'print JSON')
    .action((id: string, opts: { json?: boolean }) => run(async () => {
      record(opts.json, await transport().request<ApiKeyView>('DELETE', `/v1/api-keys/${encodeURIComponent(id)}`));
    }));
}
