import { Command, CommanderError } from 'commander';
import { registerPolicyCommands } from './commands/policy.ts';
import { registerAuditCommands } from './commands/audit.ts';

import { EXIT } from './exit-codes.ts';

export { EXIT };

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
