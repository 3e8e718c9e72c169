import type { Command } from 'commander';
import type { Tenant } from '../../../schemas/identity.ts';
import { pages, print, record, run, transport } from './remote.ts';

type CreateOptions = { name: string; defaultDecision?: string; adminName?: string; adminEmail?: string; json?: boolean };
type SetOptions = { name?: string; defaultDecision?: string; json?: boolean };

/** `countersign tenants …`: platform admins create and list tenants; tenant admins read and set their own. */
export function registerTenantCommands(program: Command): void {
  const tenants = program.command('tenants').description('Tenants and their settings.');

  tenants
    .command('create <id>')
    .description('Create a tenant and its first admin (platform admins); prints the admin key once.')
    .requiredOption('--name <name>', 'display name')
    .option('--default-decision <decision>', 'when no rule matches: DENY (default), REQUIRE_APPROVAL, ALLOW_WITH_CONSTRAINTS, ALLOW')
    .option('--admin-name <name>', 'name of the first admin')
    .option('--admin-email <email>', 'email of the first admin')
    .option('--json', 'print JSON')
    .action((id: string, opts: CreateOptions) => run(async () => {
      const admin = opts.adminName ? { name: opts.adminName, ...(opts.adminEmail ? { email: opts.adminEmail } : {}) } : undefined;
      const body = { id, name: opts.name, ...(opts.defaultDecision ? { default_decision: opts.defaultDecision } : {}), ...(admin ? { admin } : {}) };
      const created = await transport().request<{ id: string; admin_principal_id: string; admin_api_key: string }>('POST', '/v1/tenants', body, { retry: false });
      if (opts.json) return record(true, created);
      process.stdout.write(`${created.admin_api_key}\n`);
      process.stderr.write(`tenant ${created.id} created; admin ${created.admin_principal_id}: store the key now, it is not shown again\n`);
    }));

  tenants
    .command('list')
    .description('List every tenant (platform admins).')
    .option('--limit <n>', 'per page', '50')
    .option('--all', 'every page')
    .option('--json', 'print JSON')
    .action((opts: { limit: string; all?: boolean; json?: boolean }) => run(async () => {
      const items = await pages<Tenant>(transport(), '/v1/tenants', { limit: opts.limit }, opts.all);
      print(opts.json, items, items, ['id', 'name', 'default_decision', 'created_at']);
    }));

  const ownTenant = async (id: string | undefined) => id ?? (await transport().request<{ tenant_id: string }>('GET', '/v1/me')).tenant_id;

  tenants
    .command('show [id]')
    .description('Show a tenant and its settings (default: yours).')
    .option('--json', 'print JSON')
    .action((id: string | undefined, opts: { json?: boolean }) => run(async () => {
      record(opts.json, await transport().request<Tenant>('GET', `/v1/tenants/${encodeURIComponent(await ownTenant(id))}`));
    }));

  tenants
    .command('set [id]')
    .description("Change a tenant's name or default decision (default: yours; admins).")
    .option('--name <name>', 'display name')
    .option('--default-decision <decision>', 'when no rule matches')
    .option('--json', 'print JSON')
    .action((id: string | undefined, opts: SetOptions) => run(async () => {
      const body = { ...(opts.name ? { name: opts.name } : {}), ...(opts.defaultDecision ? { default_decision: opts.defaultDecision } : {}) };
      record(opts.json, await transport().request<Tenant>('PATCH', `/v1/tenants/${encodeURIComponent(await ownTenant(id))}`, body));
    }));
}
