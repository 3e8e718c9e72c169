import type { Command } from 'commander';

/** `countersign policy …`: owned by the policy engine (services/policy). */
export function registerPolicyCommands(program: Command): void {
  program.command('policy').description('Write, check and simulate policies.');
}
