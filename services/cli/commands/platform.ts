import type { Command } from 'commander';
import type { PlatformAdmin } from '../../../schemas/identity.ts';
import { print, record, run, transport, UsageError } from './remote.ts';

type SettingsOptions = { fourEyes?: string; requireValidation?: string; refuseLoosening?: string; reviewTimeout?: string; json?: boolean };

const onOff = (flag: string, v: string | undefined): boolean | undefined => {
  if (v === undefined) return undefined;
  if (v === 'on' || v === 'true') return true;
  if (v === 'off' || v === 'false') return false;
  throw new UsageError(`${flag} takes on or off`);
};

/** `countersign platform settings` and `platform admins create|list|revoke` (platform admins). */
export function registerPlatformCommands(program: Command): void {
  const platform = program.command('platform').description("The platform's own settings (platform admins); its policies are `policy … --platform`.");
  platform
    .command('settings')
    .description("Show the platform's policy settings, or change them with the options")
    .option('--four-eyes <on|off>', 'a platform policy change needs a second platform admin')
    .option('--require-validation <on|off>', "activation needs a validation of the exact draft against every tenant's recent runs")
    .option('--refuse-loosening <on|off>', 'activation is refused while the validation shows undeclared loosening')
    .option('--review-timeout <duration>', 'how long a review waits (e.g. 72h)')
    .option('--json', 'print JSON')
    .action((opts: SettingsOptions) => run(async () => {
      const body = Object.fromEntries(Object.entries({
        policy_four_eyes: onOff('--four-eyes', opts.fourEyes),
        policy_require_validation: onOff('--require-validation', opts.requireValidation),
        policy_refuse_loosening: onOff('--refuse-loosening', opts.refuseLoosening),
        policy_activation_timeout: opts.reviewTimeout,
      }).filter(([, v]) => v !== undefined));
      const t = transport();
      record(opts.json, Object.keys(body).length === 0
        ? await t.request<Record<string, unknown>>('GET', '/v1/platform/settings')
        : await t.request<Record<string, unknown>>('PATCH', '/v1/platform/settings', body, { retry: false }));
    }));

  const admins = platform.command('admins').description('Platform admins (platform admins).');

  admins
    .command('list')
    .description('List the platform admins, enabled or not.')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => run(async () => {
      const { items } = await transport().request<{ items: PlatformAdmin[] }>('GET', '/v1/platform/admins');
      print(opts.json, items, items, ['principal_id', 'tenant_id', 'name', 'disabled', 'created_at']);
    }));

  admins
    .command('revoke')
    .description('Take the platform flag from a platform admin; it stays a member of its tenant with its roles there. Never the last enabled one.')
    .argument('<principal>', 'its principal id (prn_…)')
    .requiredOption('--tenant <id>', 'its home tenant')
    .option('--json', 'print JSON')
    .action((principal: string, opts: { tenant: string; json?: boolean }) => run(async () => {
      const path = `/v1/platform/admins/${encodeURIComponent(opts.tenant)}/${encodeURIComponent(principal)}`;
      record(opts.json, await transport().request<Record<string, unknown>>('DELETE', path, undefined, { retry: false }));
    }));

  admins
    .command('create')
    .description('Make another platform admin: a person in an existing tenant (its home); prints its key once. A platform change under --four-eyes needs a second one.')
    .requiredOption('--tenant <id>', 'the tenant it belongs to')
    .requiredOption('--name <name>', 'display name')
    .option('--email <email>', 'where reviews of platform changes are emailed')
    .option('--slack-user-id <id>', 'where reviews of platform changes are sent on Slack')
    .option('--json', 'print JSON')
    .action((opts: { tenant: string; name: string; email?: string; slackUserId?: string; json?: boolean }) => run(async () => {
      const body = { tenant_id: opts.tenant, name: opts.name, ...(opts.email ? { email: opts.email } : {}), ...(opts.slackUserId ? { slack_user_id: opts.slackUserId } : {}) };
      const created = await transport().request<{ principal_id: string; tenant_id: string; api_key: string }>('POST', '/v1/platform/admins', body, { retry: false });
      if (opts.json) return record(true, created);
      process.stdout.write(`${created.api_key}\n`);
      process.stderr.write(`platform admin ${created.principal_id} created in tenant ${created.tenant_id}: store the key now, it is not shown again\n`);
    }));
}
