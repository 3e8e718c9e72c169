import type { Command } from 'commander';
import type { PrincipalView } from '../../../schemas/identity.ts';
import { list, pages, print, record, run, transport } from './remote.ts';

type CreateOptions = { name: string; kind: string; roles: string; groups?: string; email?: string; slack?: string; expires?: string; agentId?: string; actsFor?: string; json?: boolean };
type UpdateOptions = { name?: string; roles?: string; groups?: string; email?: string; slack?: string; disable?: boolean; enable?: boolean; agentId?: string; actsFor?: string; json?: boolean };

/** `countersign principals …`: the members (people and agents) of your tenant. */
export function registerPrincipalCommands(program: Command): void {
  const principals = program.command('principals').description('Members of your tenant: people and agents, their roles and approver groups.');

  principals
    .command('create')
    .description('Add a person or an agent (admins); prints its first API key once.')
    .requiredOption('--name <name>', 'display name')
    .requiredOption('--kind <kind>', 'person or agent')
    .requiredOption('--roles <roles>', 'comma-separated: agent, approver, author, admin, auditor')
    .option('--groups <groups>', 'comma-separated approver groups')
    .option('--email <email>', 'email address (people; email approvals)')
    .option('--slack <user-id>', 'Slack user id (people; Slack approvals)')
    .option('--expires <iso>', 'expiry of the first key')
    .option('--agent-id <id>', 'the agent id its key decides as (agents default to their name)')
    .option('--acts-for <ids>', 'comma-separated agent ids (or prefixes ending in *) it may also ask for, e.g. a gateway')
    .option('--json', 'print JSON')
    .action((opts: CreateOptions) => run(async () => {
      const body = {
        name: opts.name, kind: opts.kind, roles: list(opts.roles), groups: opts.groups ? list(opts.groups) : [],
        ...(opts.email ? { email: opts.email } : {}), ...(opts.slack ? { slack_user_id: opts.slack } : {}), ...(opts.expires ? { expires_at: opts.expires } : {}),
        ...(opts.agentId ? { agent_id: opts.agentId } : {}), ...(opts.actsFor ? { acts_for: list(opts.actsFor) } : {}),
      };
      const created = await transport().request<{ id: string; api_key: string; key_id: string }>('POST', '/v1/principals', body, { retry: false });
      if (opts.json) return record(true, created);
      process.stdout.write(`${created.api_key}\n`);
      process.stderr.write(`principal ${created.id} created (key ${created.key_id}): store the key now, it is not shown again\n`);
    }));

  principals
    .command('list')
    .description('List members (admins, auditors).')
    .option('--role <role>', 'only with this role')
    .option('--group <group>', 'only in this approver group')
    .option('--kind <kind>', 'person or agent')
    .option('--limit <n>', 'per page', '50')
    .option('--all', 'every page')
    .option('--json', 'print JSON')
    .action((opts: { role?: string; group?: string; kind?: string; limit: string; all?: boolean; json?: boolean }) => run(async () => {
      const items = await pages<PrincipalView>(transport(), '/v1/principals', { role: opts.role, group: opts.group, kind: opts.kind, limit: opts.limit }, opts.all);
      print(opts.json, items, items, ['id', 'name', 'kind', 'agent_id', 'roles', 'groups', 'email', 'slack_user_id', 'disabled']);
    }));

  principals
    .command('show <id>')
    .description('Show a member.')
    .option('--json', 'print JSON')
    .action((id: string, opts: { json?: boolean }) => run(async () => {
      record(opts.json, await transport().request<PrincipalView>('GET', `/v1/principals/${encodeURIComponent(id)}`));
    }));

  principals
    .command('update <id>')
    .description("Change a member's roles, groups or channel identities, or disable/enable it (admins).")
    .option('--name <name>', 'display name')
    .option('--roles <roles>', 'comma-separated; replaces the roles')
    .option('--groups <groups>', 'comma-separated; replaces the groups ("" for none)')
    .option('--email <email>', 'email address ("" to clear)')
    .option('--slack <user-id>', 'Slack user id ("" to clear)')
    .option('--disable', 'refuse all its keys from now on')
    .option('--enable', 'accept its keys again')
    .option('--agent-id <id>', 'the agent id its key decides as ("" for none)')
    .option('--acts-for <ids>', 'comma-separated agent ids or prefixes ending in * it may also ask for; replaces the list ("" for none)')
    .option('--json', 'print JSON')
    .action((id: string, opts: UpdateOptions) => run(async () => {
      const body = {
        ...(opts.name ? { name: opts.name } : {}),
        ...(opts.roles !== undefined ? { roles: list(opts.roles) } : {}),
        ...(opts.groups !== undefined ? { groups: list(opts.groups) } : {}),
        ...(opts.email !== undefined ? { email: opts.email || null } : {}),
        ...(opts.slack !== undefined ? { slack_user_id: opts.slack || null } : {}),
        ...(opts.disable ? { disabled: true } : opts.enable ? { disabled: false } : {}),
        ...(opts.agentId !== undefined ? { agent_id: opts.agentId || null } : {}),
        ...(opts.actsFor !== undefined ? { acts_for: list(opts.actsFor) } : {}),
      };
      record(opts.json, await transport().request<PrincipalView>('PATCH', `/v1/principals/${encodeURIComponent(id)}`, body));
    }));
}
