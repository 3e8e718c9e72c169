import type { Command } from 'commander';
import { record, run, transport, UsageError } from './remote.ts';

type SettingsOptions = { fourEyes?: string; requireValidation?: string; refuseLoosening?: string; reviewTimeout?: string; json?: boolean };

const onOff = (flag: string, v: string | undefined): boolean | undefined => {
  if (v === undefined) return undefined;
  if (v === 'on' || v === 'true') return true;
  if (v === 'off' || v === 'false') return false;
  throw new UsageError(`${flag} takes on or off`);
};

/** `countersign platform settings`: the settings that gate platform policies (platform admins). */
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
}
