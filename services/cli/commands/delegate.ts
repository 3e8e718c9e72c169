import type { Command } from 'commander';
import { durationSeconds } from '../../../schemas/duration.ts';
import { print, record, run, transport, UsageError } from './remote.ts';

type GrantOptions = { to: string; group: string; until?: string; for?: string; from?: string; start?: string; json?: boolean };

/** `countersign delegate …`: while you are away, another member of your approver group answers for you. */
export function registerDelegateCommands(program: Command): void {
  const delegate = program
    .command('delegate')
    .description('Delegate your approvals for one group to another member of it while you are away.')
    .option('--to <principal>', 'the member who answers for you (same approver group)')
    .option('--group <group>', 'the approver group')
    .option('--until <iso>', 'when the delegation ends (ISO-8601)')
    .option('--for <duration>', 'or how long it lasts from now (e.g. 3d, 1w)')
    .option('--from <principal>', 'admins: the member who is away (default: you)')
    .option('--start <iso>', 'when it starts (default: now)')
    .option('--json', 'print JSON')
    .action((opts: GrantOptions) => run(async () => {
      if (!opts.to || !opts.group) throw new UsageError('give --to <principal> and --group <group> (or use delegate list / delegate revoke <id>)');
      if ((opts.until === undefined) === (opts.for === undefined)) throw new UsageError('give exactly one of --until <iso> or --for <duration>');
      let ends = opts.until;
      if (opts.for !== undefined) {
        const sec = durationSeconds(opts.for);
        if (sec === undefined) throw new UsageError(`--for ${opts.for} is not a duration such as 8h, 3d or 1w`);
        ends = new Date(Date.now() + sec * 1000).toISOString();
      }
      const body = { to: opts.to, group: opts.group, ends_at: ends, ...(opts.from ? { from: opts.from } : {}), ...(opts.start ? { starts_at: opts.start } : {}) };
      record(opts.json, await transport().request<Record<string, unknown>>('POST', '/v1/delegations', body, { retry: false }));
    }));

  delegate
    .command('list')
    .description('Delegations from or to you (admins and auditors: all of the tenant).')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => run(async () => {
      const res = await transport().request<{ items: Array<Record<string, unknown>> }>('GET', '/v1/delegations');
      print(opts.json, res, res.items, ['id', 'from', 'to', 'group', 'starts_at', 'ends_at', 'status']);
    }));

  delegate
    .command('revoke <id>')
    .description('End a delegation now (its delegator or an admin).')
    .option('--json', 'print JSON')
    .action((id: string, opts: { json?: boolean }) => run(async () => {
      record(opts.json, await transport().request<Record<string, unknown>>('DELETE', `/v1/delegations/${encodeURIComponent(id)}`, undefined, { retry: false }));
    }));
}
