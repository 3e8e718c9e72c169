import type { Command } from 'commander';
import { print, record, run, transport } from './remote.ts';
import { cleanText } from '../../channels/untrusted-text.ts';

const terminalText = (s: string) => cleanText(String(s), 600).replace(/[\t\n]/g, ' ');

type AnswerOptions = { comment?: string; round?: string; json?: boolean };

/** `countersign approvals …`: what waits for you as an approver, and your answer. */
export function registerApprovalCommands(program: Command): void {
  const approvals = program.command('approvals').description('Approval requests of your approver groups.');

  approvals
    .command('list')
    .description('List the approval and override requests waiting for your groups.')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'print JSON')
    .action((opts: { limit: string; json?: boolean }) => run(async () => {
      const res = await transport().request<{ items: Array<Record<string, unknown>> } | Array<Record<string, unknown>>>('GET', '/v1/approvals', undefined, { query: { limit: opts.limit } });
      const items = Array.isArray(res) ? res : res.items;
      print(opts.json, res, items, ['decision_id', 'kind', 'round', 'agent_id', 'tool', 'operation', 'groups', 'approvals', 'quorum', 'deadline', 'reason']);
    }));

  approvals
    .command('show <decision-id>')
    .description('One request: its facts, and the checklist of judgment rules to check before answering.')
    .option('--json', 'print JSON')
    .action((id: string, opts: { json?: boolean }) => run(async () => {
      const res = await transport().request<{ items: Array<Record<string, unknown>> }>('GET', '/v1/approvals', undefined, { query: { limit: '500' } });
      const waiting = res.items.find((i) => i['decision_id'] === id);
      const item = waiting ?? await transport().request<Record<string, unknown>>('GET', `/v1/decisions/${encodeURIComponent(id)}`);
      if (opts.json) return print(true, item);
      const { checklist, ...rest } = item as Record<string, unknown> & { checklist?: Array<{ text: string; rule: string; policy_id: string; version: number }> };
      record(false, rest);
      if (checklist !== undefined && checklist.length > 0) {
        process.stdout.write('\nchecklist (judgment rules of the policy; check each before you answer):\n');
        // Policy text is shown as text: control and escape characters are stripped so it cannot restyle the terminal.
        for (const j of checklist) process.stdout.write(`  - ${terminalText(j.text)} (rule ${terminalText(j.rule)}, ${terminalText(j.policy_id)} v${j.version})\n`);
      }
    }));

  for (const verdict of ['approve', 'reject'] as const) {
    approvals
      .command(`${verdict} <decision-id>`)
      .description(`${verdict === 'approve' ? 'Approve' : 'Reject'} a request waiting for your group.`)
      .option('--comment <text>', 'why (kept in the record)')
      .option('--round <n>', 'the round to answer (default: the open one)')
      .option('--json', 'print JSON')
      .action((id: string, opts: AnswerOptions) => run(async () => {
        const body = { verdict, channel: 'cli', ...(opts.comment ? { comment: opts.comment } : {}), ...(opts.round ? { round: Number(opts.round) } : {}) };
        // Not retried: an answer is not idempotent on our side of the wire; the workflow refuses a second one.
        record(opts.json, await transport().request<Record<string, unknown>>('POST', `/v1/decisions/${encodeURIComponent(id)}/approvals`, body, { retry: false }));
      }));
  }
}
