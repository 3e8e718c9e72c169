import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import type { DecisionSummary } from '../../../schemas/api.ts';
import type { DecisionResult } from '../../../schemas/decision.ts';
import { EXIT } from '../exit-codes.ts';
import { pages, print, record, run, transport } from './remote.ts';

type ListOptions = {
  status?: string; agent?: string; decision?: string; policy?: string; policyVersion?: string; rule?: string; tool?: string; operation?: string;
  since?: string; until?: string; limit: string; all?: boolean; json?: boolean;
};

/** `countersign decisions …`: what agents asked and what they were told. */
export function registerDecisionCommands(program: Command): void {
  const decisions = program.command('decisions').description("Your tenant's decisions (an agent key sees its own).");

  decisions
    .command('list')
    .description('The monitor: decisions, newest first, narrowed by any of the filters.')
    .option('--status <status>', 'final or pending_approval')
    .option('--agent <id>', 'only this agent')
    .option('--decision <decision>', 'ALLOW, DENY, REQUIRE_APPROVAL or ALLOW_WITH_CONSTRAINTS')
    .option('--policy <id>', 'only decisions whose deciding rule is in this policy')
    .option('--policy-version <n>', 'and in this version of it (with --policy)')
    .option('--rule <name>', 'only decisions this rule decided')
    .option('--tool <name>', 'only requests for this tool')
    .option('--operation <name>', 'only requests for this operation')
    .option('--since <time>', 'requested at or after (ISO 8601)')
    .option('--until <time>', 'requested before (ISO 8601)')
    .option('--limit <n>', 'per page', '50')
    .option('--all', 'every page')
    .option('--json', 'print JSON')
    .action((opts: ListOptions) => run(async () => {
      const query = {
        status: opts.status, agent: opts.agent, decision: opts.decision, policy_id: opts.policy, policy_version: opts.policyVersion, rule: opts.rule,
        tool: opts.tool, operation: opts.operation, since: opts.since, until: opts.until, limit: opts.limit,
      };
      const items = await pages<DecisionSummary>(transport(), '/v1/decisions', query, opts.all);
      print(opts.json, items, items, ['decision_id', 'requested_at', 'agent_id', 'tool', 'operation', 'decision', 'status', 'reason', 'reason_code', 'policy_id', 'policy_version', 'matched_rule', 'run_id']);
    }));

  decisions
    .command('show <id>')
    .description('Show one decision.')
    .option('--json', 'print JSON')
    .action((id: string, opts: { json?: boolean }) => run(async () => {
      record(opts.json, await transport().request<DecisionResult>('GET', `/v1/decisions/${encodeURIComponent(id)}`));
    }));

  decisions
    .command('watch <id>')
    .description('Wait until a decision is final (approved, rejected, expired) and show it; exit 1 if the time runs out.')
    .option('--timeout <seconds>', 'give up after this long', '600')
    .option('--json', 'print JSON')
    .action((id: string, opts: { timeout: string; json?: boolean }) => run(async () => {
      const t = transport();
      const total = Math.max(1, Number(opts.timeout) || 600);
      const deadline = Date.now() + total * 1000;
      // A progress bar only on a terminal: scripts and pipes get the result alone.
      const bar = process.stderr.isTTY && !opts.json ? new cliProgress.SingleBar({ format: `waiting for ${id} {bar} {value}/{total} s`, stream: process.stderr }, cliProgress.Presets.shades_classic) : null;
      bar?.start(total, 0);
      const tick = bar ? setInterval(() => bar.update(Math.min(total, Math.round(total - (deadline - Date.now()) / 1000))), 1000) : undefined;
      try {
        let current = await t.request<DecisionResult>('GET', `/v1/decisions/${encodeURIComponent(id)}`);
        while (current.status !== 'final' && Date.now() < deadline) {
          const wait = Math.max(1, Math.min(60, Math.floor((deadline - Date.now()) / 1000)));
          current = await t.request<DecisionResult>('GET', `/v1/decisions/${encodeURIComponent(id)}`, undefined, { query: { wait }, extraTimeoutMs: wait * 1000 });
        }
        clearInterval(tick);
        bar?.stop();
        record(opts.json, current);
        if (current.status !== 'final') process.exitCode = EXIT.failed;
      } finally {
        clearInterval(tick);
        bar?.stop();
      }
    }));
}
