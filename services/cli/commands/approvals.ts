import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { print, record, run, transport, UsageError } from './remote.ts';
import { cleanText } from '../../channels/untrusted-text.ts';

const terminalText = (s: string) => cleanText(String(s), 600).replace(/[\t\n]/g, ' ');

type AnswerOptions = { comment?: string; round?: string; json?: boolean; editArgs?: string };

/** `--edit-args '{…}'`, or `--edit-args @FILE`: a JSON object, the arguments to approve instead. */
function editedArgs(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text.startsWith('@') ? readFileSync(text.slice(1), 'utf8') : text);
  } catch (err) {
    throw new UsageError(`--edit-args: not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError('--edit-args: expected a JSON object (the tool arguments)');
  return value as Record<string, unknown>;
}

/** `countersign approvals …`: what waits for you as an approver, and your answer. */
export function registerApprovalCommands(program: Command): void {
  const approvals = program.command('approvals').description('Approval requests of your approver groups.');

  approvals
    .command('list')
    .description('List the approval and override requests waiting for your groups, and (admins) the policy reviews you may answer.')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'print JSON')
    .action((opts: { limit: string; json?: boolean }) => run(async () => {
      const res = await transport().request<{ items: Array<Record<string, unknown>> } | Array<Record<string, unknown>>>('GET', '/v1/approvals', undefined, { query: { limit: opts.limit } });
      const items = Array.isArray(res) ? res : res.items;
      print(opts.json, res, items, ['decision_id', 'kind', 'round', 'agent_id', 'tool', 'operation', 'groups', 'approvals', 'quorum', 'deadline', 'reason', 'policy_id', 'change']);
    }));

  approvals
    .command('show <id>')
    .description("One request (a decision id, or a review id): its facts, the checklist of judgment rules to check before answering, the constraints that will apply and the agent's recent history for the tool.")
    .option('--json', 'print JSON')
    .action((id: string, opts: { json?: boolean }) => run(async () => {
      const res = await transport().request<{ items: Array<Record<string, unknown>> }>('GET', '/v1/approvals', undefined, { query: { limit: '500' } });
      const waiting = res.items.find((x) => x['decision_id'] === id || x['review_id'] === id);
      // Not waiting for you (answered, closed, another group's): the decision itself, as far as you may read it.
      const item = waiting ?? await transport().request<Record<string, unknown>>('GET', `/v1/decisions/${encodeURIComponent(id)}`);
      if (opts.json) return print(true, item);
      const { checklist, history, ...rest } = item as Record<string, unknown> & {
        checklist?: Array<{ text: string; rule: string; policy_id: string; version: number }>;
        history?: Array<Record<string, unknown>>;
      };
      record(false, rest);
      if (checklist !== undefined && checklist.length > 0) {
        process.stdout.write('\nchecklist (judgment rules of the policy; check each before you answer):\n');
        // Policy text is shown as text: control and escape characters are stripped so it cannot restyle the terminal.
        for (const j of checklist) process.stdout.write(`  - ${terminalText(j.text)} (rule ${terminalText(j.rule)}, ${terminalText(j.policy_id)} v${j.version})\n`);
      }
      if (history) {
        process.stdout.write(history.length ? '\nrecent decisions of this agent for this tool:\n' : '\nno earlier decisions of this agent for this tool\n');
        if (history.length) print(false, history, history, ['decision_id', 'asked_at', 'operation', 'decision', 'finalized_via', 'outcome']);
      }
    }));

  for (const verdict of ['approve', 'reject'] as const) {
    const cmd = approvals
      .command(`${verdict} <decision-id>`)
      .description(`${verdict === 'approve' ? 'Approve' : 'Reject'} a request waiting for your group.`)
      .option('--comment <text>', 'why (kept in the record)')
      .option('--round <n>', 'the round to answer (default: the open one)')
      .option('--json', 'print JSON');
    if (verdict === 'approve') {
      cmd.option('--edit-args <json>', "approve these arguments instead (a JSON object, or @FILE); counted only when the run's policy finds them no looser");
    }
    cmd.action((id: string, opts: AnswerOptions) => run(async () => {
        const body = {
          verdict, channel: 'cli', ...(opts.comment ? { comment: opts.comment } : {}), ...(opts.round ? { round: Number(opts.round) } : {}),
          ...(opts.editArgs !== undefined ? { edited_args: editedArgs(opts.editArgs) } : {}),
        };
        // Not retried: an answer is not idempotent on our side of the wire; the workflow refuses a second one.
        record(opts.json, await transport().request<Record<string, unknown>>('POST', `/v1/decisions/${encodeURIComponent(id)}/approvals`, body, { retry: false }));
      }));
  }
}
