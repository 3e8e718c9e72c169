import { Command, CommanderError } from 'commander';
import { registerPolicyCommands } from './commands/policy.ts';
import { registerAgentCommands } from './commands/agent.ts';
import { registerAuditCommands } from './commands/audit.ts';
import { registerApprovalCommands } from './commands/approvals.ts';
import { registerDelegateCommands } from './commands/delegate.ts';
import { registerDecisionCommands } from './commands/decisions.ts';
import { registerKeyCommands } from './commands/keys.ts';
import { registerLoginCommands } from './commands/login.ts';
import { registerPrincipalCommands } from './commands/principals.ts';
import { registerTenantCommands } from './commands/tenants.ts';
import { registerPlatformCommands } from './commands/platform.ts';
import { registerToolCommands } from './commands/tools.ts';
import { registerMcpCommands } from './commands/mcp.ts';
import { registerAdminCommands } from './commands/admin.ts';

import { EXIT } from './exit-codes.ts';

export { EXIT };

/** Subcommands are grouped in --help by who uses them. */
const GROUPS: Array<[string, Array<(p: Command) => void>]> = [
  ['Policy authors:', [registerPolicyCommands, registerAgentCommands]],
  ['Agents, approvers and operators:', [registerDecisionCommands, registerApprovalCommands, registerDelegateCommands, registerMcpCommands]],
  ['Auditors:', [registerAuditCommands]],
  ['Admins:', [registerKeyCommands, registerPrincipalCommands, registerTenantCommands, registerPlatformCommands, registerToolCommands, registerAdminCommands]],
  ['Connection:', [registerLoginCommands]],
];

export function buildProgram(): Command {
  const program = new Command('countersign')
    .description('Countersign: policy decisions and human approvals for AI agent tool calls.')
    .addHelpText('after', `
Remote commands read COUNTERSIGN_URL and COUNTERSIGN_API_KEY, else the file \`countersign login\` writes.
Remote commands take --json. Exit codes: 0 ok; 1 the check or request failed (invalid policy, divergence,
refused by the API, still pending); 2 usage error or not logged in; 3 a dependency or the API is unreachable.`)
    .exitOverride()
    .showHelpAfterError();
  for (const [heading, registers] of GROUPS) {
    const before = program.commands.length;
    for (const register of registers) register(program);
    for (const cmd of program.commands.slice(before)) cmd.helpGroup(heading);
  }
  // Subcommands exit through main() too (no process.exit from commander deep inside a command).
  const exitOverride = (cmd: Command) => { cmd.exitOverride(); cmd.commands.forEach(exitOverride); };
  exitOverride(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
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
