import { Command, CommanderError } from 'commander';
import { registerPolicyCommands } from './commands/policy.ts';
import { registerAuditCommands } from './commands/audit.ts';

/**
 * Exit codes: 0 success; 1 the check failed (invalid policy, failing test, audit divergence);
 * 2 usage error; 3 could not reach a dependency.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, unavailable: 3 } as const;

export async function main(argv: string[]): Promise<number> {
  const program = new Command('countersign')
    .description('Countersign: policy decisions and human approvals for AI agent tool calls.')
    .exitOverride()
    .showHelpAfterError();
  registerPolicyCommands(program);
  registerAuditCommands(program);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    process.stderr.write(`countersign: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.failed;
  }
}
