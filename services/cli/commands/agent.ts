import type { Command } from 'commander';
import { CountersignApiError } from '../../sdk/errors.ts';
import { parseDataText } from '../../policy/parse-text.ts';
import { readText } from './policy-files.ts';
import { formatPolicyError } from '../../policy/policy-error.ts';
import { EXIT } from '../exit-codes.ts';
import { print, run, transport, UsageError } from './remote.ts';

type Violation = { kind: string; item: string; policy_id: string; version: number; rule: string; reason: string };

/**
 * `countersign agent push MANIFEST [--force]` (issue 7, seed 004's push): checks the providers, models and tools
 * an agent declares against the tenant's active policies. Each violation is listed; the push is refused (exit 1)
 * unless --force, which the server records as an AgentManifestForced event.
 */
export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description("Agents: check an agent's manifest against the active policies.");
  agent
    .command('push')
    .description("Check MANIFEST (YAML or JSON: agent.id, providers, models, tools) against the active policies; exit 1 listing each violation unless --force")
    .argument('<manifest>')
    .option('--force', 'accept despite violations (admins and policy authors; recorded as an event)')
    .option('--json', 'print JSON')
    .action((file: string, opts: { force?: boolean; json?: boolean }) => run(async () => {
      const t = readText(file);
      if (!t.ok) throw new UsageError(t.errors.map((e) => e.message).join('; '));
      const parsed = parseDataText(t.text, file);
      if (!parsed.ok) throw new UsageError(parsed.errors.map((e) => formatPolicyError({ ...e, file })).join('\n'));
      const agentId = (parsed.value as { agent?: { id?: unknown } } | null)?.agent?.id;
      if (typeof agentId !== 'string' || !agentId) throw new UsageError(`${file}: agent.id is required`);
      try {
        const res = await transport().request<{ accepted: boolean; forced: boolean; violations: Violation[] }>(
          'POST', `/v1/agents/${encodeURIComponent(agentId)}/manifest`, parsed.value, { retry: false, query: { force: opts.force ? 'true' : undefined } },
        );
        if (opts.json) return print(true, res);
        for (const v of res.violations) process.stdout.write(`violation (forced): ${v.kind} ${v.item}: ${v.reason}\n`);
        process.stdout.write(res.forced ? `agent ${agentId}: manifest accepted with ${res.violations.length} violation(s) by --force (recorded)\n` : `agent ${agentId}: manifest ok\n`);
      } catch (err) {
        const violations = err instanceof CountersignApiError && err.status === 409 ? (err.problem['violations'] as Violation[] | undefined) : undefined;
        if (!violations) throw err;
        if (opts.json) print(true, (err as CountersignApiError).problem);
        else {
          for (const v of violations) process.stdout.write(`violation: ${v.kind} ${v.item}: ${v.reason}\n`);
          process.stdout.write(`agent ${agentId}: manifest refused: ${violations.length} violation(s); --force accepts it (recorded)\n`);
        }
        process.exitCode = EXIT.failed;
      }
    }));
}
