import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CountersignApiError } from '../../sdk/errors.ts';
import { parsePolicyText } from '../../policy/index.ts';
import { record, run, transport, UsageError } from './remote.ts';

/** Remote policy lifecycle commands (issue 7): push, rollback, pull, diff. */
export function registerPolicyLifecycleCommands(policy: Command): void {
  policy
    .command('push')
    .description('Push FILE as the draft of its policy (clones the active version first when there is one); --activate activates it')
    .argument('<file>')
    .option('--activate', 'activate the pushed draft')
    .option('--json', 'print JSON')
    .action((file: string, opts: { activate?: boolean; json?: boolean }) => run(async () => {
      const parsed = parsePolicyText(readFileSync(file, 'utf8'), file);
      if (!parsed.ok) throw new UsageError(parsed.errors.map((e) => `${file}: ${e.path}: ${e.message}`).join('\n'));
      const doc = parsed.document as unknown as Record<string, unknown>;
      const id = parsed.document.metadata.id;
      const t = transport();
      let answer: Record<string, unknown>;
      try {
        answer = await t.request<Record<string, unknown>>('POST', '/v1/policies', doc, { retry: false });
      } catch (err) {
        if (!(err instanceof CountersignApiError) || err.status !== 409) throw err;
        const current = await t.request<{ draft: unknown }>('GET', `/v1/policies/${encodeURIComponent(id)}`);
        if (!current.draft) await t.request('POST', `/v1/policies/${encodeURIComponent(id)}/clone`, undefined, { retry: false });
        answer = await t.request<Record<string, unknown>>('PUT', `/v1/policies/${encodeURIComponent(id)}`, doc, { retry: false });
      }
      if (opts.activate) answer = await t.request<Record<string, unknown>>('POST', `/v1/policies/${encodeURIComponent(id)}/activate`, undefined, { retry: false });
      record(opts.json, answer);
    }));

  policy
    .command('rollback')
    .description('Re-activate version N of policy ID (as its next version)')
    .argument('<id>')
    .requiredOption('--to <n>', 'the version to roll back to')
    .option('--json', 'print JSON')
    .action((id: string, opts: { to: string; json?: boolean }) => run(async () => {
      const n = Number(opts.to);
      if (!Number.isInteger(n) || n < 1) throw new UsageError('--to takes a version number');
      record(opts.json, await transport().request<Record<string, unknown>>('POST', `/v1/policies/${encodeURIComponent(id)}/rollback`, { to_version: n }, { retry: false }));
    }));

  policy
    .command('pull')
    .description("Print the active document of the policy bound to an agent (JSON)")
    .requiredOption('--agent <id>', 'the agent')
    .action((opts: { agent: string }) => run(async () => {
      const b = await transport().request<{ policy_id: string | null; document: unknown }>('GET', `/v1/agents/${encodeURIComponent(opts.agent)}/binding`);
      if (!b.policy_id) throw new UsageError(`agent ${opts.agent} has no bound policy`);
      process.stdout.write(`${JSON.stringify(b.document, null, 2)}\n`);
    }));

  policy
    .command('diff')
    .description('Rule-by-rule difference between two versions of policy ID (a version number or `draft`)')
    .argument('<id>')
    .requiredOption('--from <v>', 'version or draft')
    .requiredOption('--to <v>', 'version or draft')
    .action((id: string, opts: { from: string; to: string }) => run(async () => {
      const d = await transport().request<{ rules: Array<{ rule: string; change: string }> }>('GET', `/v1/policies/${encodeURIComponent(id)}/diff?from=${encodeURIComponent(opts.from)}&to=${encodeURIComponent(opts.to)}`);
      for (const r of d.rules) process.stdout.write(`${r.change === 'added' ? '+' : r.change === 'removed' ? '-' : r.change === 'changed' ? '~' : ' '} ${r.rule}\n`);
    }));
}
