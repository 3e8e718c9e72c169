import type { Command } from 'commander';
import { record, run, transport } from './remote.ts';

/** `countersign admin …`: platform operations (a platform admin's key). */
export function registerAdminCommands(program: Command): void {
  const admin = program.command('admin').description('Platform operations (platform admins).');

  admin
    .command('rebuild-projection')
    .description("Rebuild the monitor's projection (the decision list) from the event log; prints events read, rows and events/s.")
    .option('--timeout <seconds>', 'how long to wait for the rebuild', '3600')
    .option('--json', 'print JSON')
    .action((opts: { timeout: string; json?: boolean }) => run(async () => {
      const seconds = Math.max(1, Number(opts.timeout) || 3600);
      record(opts.json, await transport().request<Record<string, unknown>>('POST', '/v1/admin/monitor/rebuild', undefined, { retry: false, extraTimeoutMs: seconds * 1000 }));
    }));
}
