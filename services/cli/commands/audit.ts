import type { Command } from 'commander';

/** `countersign audit …`: the auditor's tools (services/audit). */
export function registerAuditCommands(program: Command): void {
  program.command('audit').description('Rebuild and verify receipts and policy chains from the log.');
}
