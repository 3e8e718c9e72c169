import { Option, type Command } from 'commander';
import { record, run, transport } from './remote.ts';

/** `countersign admin …`: platform operations (a platform admin's key). */
export function registerAdminCommands(program: Command): void {
  const admin = program.command('admin').description('Platform operations (platform admins).');

  admin
    .command('rebuild-projection')
    .description("Rebuild a projection from the event log: the monitor's (the decision list, default) or the approvers' inbox (open rounds); prints events read, rows and events/s.")
    .addOption(new Option('--projection <name>', 'which projection').choices(['monitor', 'inbox']).default('monitor'))
    .option('--timeout <seconds>', 'how long to wait for the rebuild', '3600')
    .option('--json', 'print JSON')
    .action((opts: { projection: 'monitor' | 'inbox'; timeout: string; json?: boolean }) => run(async () => {
      const seconds = Math.max(1, Number(opts.timeout) || 3600);
      record(opts.json, await transport().request<Record<string, unknown>>('POST', `/v1/admin/${opts.projection}/rebuild`, undefined, { retry: false, extraTimeoutMs: seconds * 1000 }));
    }));
}
