import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CountersignApiError } from '../../sdk/errors.ts';
import { parsePolicyText } from '../../policy/index.ts';
import { list, record, run, transport, UsageError } from './remote.ts';

const enc = encodeURIComponent;

/** `--platform`: the platform's policies (platform admins), which apply to every tenant; otherwise the tenant's. */
export const PLATFORM_OPTION = ['--platform', "a platform policy (/v1/platform/policies; platform admins): it applies to every tenant"] as const;
export const policiesBase = (opts: { platform?: boolean }): string => (opts.platform ? '/v1/platform/policies' : '/v1/policies');

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${file}: cannot read (${err instanceof Error ? err.message : String(err)})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UsageError(`${file}: not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** Remote policy lifecycle commands: push, activate, approve/reject, clone, rollback, deprecate, pull, diff, export, import; each but pull takes --platform. */
export function registerPolicyLifecycleCommands(policy: Command): void {
  policy
    .command('activate')
    .description("Activate policy ID's draft as its next version; with four-eyes (a tenant setting) this opens a review a second admin answers")
    .argument('<id>')
    .option('--expect-loosening <rules>', "comma-separated rules whose looser decisions in the draft's validation are intended")
    .option('--json', 'print JSON')
    .option(...PLATFORM_OPTION)
    .action((id: string, opts: { expectLoosening?: string; json?: boolean; platform?: boolean }) => run(async () => {
      const body = opts.expectLoosening ? { expected_loosening: list(opts.expectLoosening) } : undefined;
      record(opts.json, await transport().request<Record<string, unknown>>('POST', `${policiesBase(opts)}/${enc(id)}/activate`, body, { retry: false }));
    }));

  for (const verdict of ['approve', 'reject'] as const) {
    policy
      .command(verdict)
      .description(`${verdict === 'approve' ? 'Approve' : 'Reject'} the activation review waiting on policy ID (a second admin; never its author)`)
      .argument('<id>')
      .option('--comment <text>', 'why')
      .option('--json', 'print JSON')
      .option(...PLATFORM_OPTION)
    .action((id: string, opts: { comment?: string; json?: boolean; platform?: boolean }) => run(async () => {
        record(opts.json, await transport().request<Record<string, unknown>>('POST', `${policiesBase(opts)}/${enc(id)}/activation/approvals`, { verdict, channel: 'cli', ...(opts.comment ? { comment: opts.comment } : {}) }, { retry: false }));
      }));
  }

  policy
    .command('clone')
    .description("Make the next version's draft of policy ID from its active version, or from --from N")
    .argument('<id>')
    .option('--from <n>', 'the version to clone')
    .option('--json', 'print JSON')
    .option(...PLATFORM_OPTION)
    .action((id: string, opts: { from?: string; json?: boolean; platform?: boolean }) => run(async () => {
      const n = opts.from === undefined ? undefined : Number(opts.from);
      if (n !== undefined && (!Number.isInteger(n) || n < 1)) throw new UsageError('--from takes a version number');
      record(opts.json, await transport().request<Record<string, unknown>>('POST', `${policiesBase(opts)}/${enc(id)}/clone`, n === undefined ? undefined : { from_version: n }, { retry: false }));
    }));

  policy
    .command('deprecate')
    .description('Deprecate the active version of policy ID: bound agents stop using it')
    .argument('<id>')
    .option('--json', 'print JSON')
    .option(...PLATFORM_OPTION)
    .action((id: string, opts: { json?: boolean; platform?: boolean }) => run(async () => {
      record(opts.json, await transport().request<Record<string, unknown>>('POST', `${policiesBase(opts)}/${enc(id)}/deprecate`, undefined, { retry: false }));
    }));

  policy
    .command('export')
    .description('Write a version of policy ID (default the active one) as signed JSON')
    .argument('<id>')
    .option('--version <n>', 'the version to export')
    .option('--out <file>', 'write to FILE (default stdout)')
    .option(...PLATFORM_OPTION)
    .action((id: string, opts: { version?: string; out?: string; platform?: boolean }) => run(async () => {
      const e = await transport().request<Record<string, unknown>>('GET', `${policiesBase(opts)}/${enc(id)}/export`, undefined, { query: { version: opts.version } });
      const text = `${JSON.stringify(e, null, 2)}\n`;
      if (opts.out) {
        writeFileSync(opts.out, text);
        process.stderr.write(`wrote ${opts.out}: ${String(e['policy_id'])} v${String(e['version'])} signed by ${String(e['signing_key_id'])}\n`);
      } else process.stdout.write(text);
    }));

  policy
    .command('import')
    .description('Import a signed export as a draft (a tampered file or an unknown key is refused)')
    .argument('<file>')
    .option('--json', 'print JSON')
    .option(...PLATFORM_OPTION)
    .action((file: string, opts: { json?: boolean; platform?: boolean }) => run(async () => {
      record(opts.json, await transport().request<Record<string, unknown>>('POST', `${policiesBase(opts)}/import`, readJson(file), { retry: false }));
    }));

  policy
    .command('push')
    .description('Push FILE as the draft of its policy (clones the active version first when there is one); --activate activates it')
    .argument('<file>')
    .option('--activate', 'activate the pushed draft')
    .option('--json', 'print JSON')
    .option(...PLATFORM_OPTION)
    .action((file: string, opts: { activate?: boolean; json?: boolean; platform?: boolean }) => run(async () => {
      const parsed = parsePolicyText(readFileSync(file, 'utf8'), file);
      if (!parsed.ok) throw new UsageError(parsed.errors.map((e) => `${file}: ${e.path}: ${e.message}`).join('\n'));
      const doc = parsed.document as unknown as Record<string, unknown>;
      const id = parsed.document.metadata.id;
      const t = transport();
      let answer: Record<string, unknown>;
      try {
        answer = await t.request<Record<string, unknown>>('POST', policiesBase(opts), doc, { retry: false });
      } catch (err) {
        if (!(err instanceof CountersignApiError) || err.status !== 409) throw err;
        const current = await t.request<{ draft: unknown }>('GET', `${policiesBase(opts)}/${encodeURIComponent(id)}`);
        if (!current.draft) await t.request('POST', `${policiesBase(opts)}/${encodeURIComponent(id)}/clone`, undefined, { retry: false });
        answer = await t.request<Record<string, unknown>>('PUT', `${policiesBase(opts)}/${encodeURIComponent(id)}`, doc, { retry: false });
      }
      if (opts.activate) answer = await t.request<Record<string, unknown>>('POST', `${policiesBase(opts)}/${encodeURIComponent(id)}/activate`, undefined, { retry: false });
      record(opts.json, answer);
    }));

  policy
    .command('rollback')
    .description('Re-activate version N of policy ID (as its next version)')
    .argument('<id>')
    .requiredOption('--to <n>', 'the version to roll back to')
    .option('--json', 'print JSON')
    .option(...PLATFORM_OPTION)
    .action((id: string, opts: { to: string; json?: boolean; platform?: boolean }) => run(async () => {
      const n = Number(opts.to);
      if (!Number.isInteger(n) || n < 1) throw new UsageError('--to takes a version number');
      record(opts.json, await transport().request<Record<string, unknown>>('POST', `${policiesBase(opts)}/${encodeURIComponent(id)}/rollback`, { to_version: n }, { retry: false }));
    }));

  policy
    .command('diff')
    .description('Rule-by-rule difference between two versions of policy ID (a version number or `draft`)')
    .argument('<id>')
    .requiredOption('--from <v>', 'version or draft')
    .requiredOption('--to <v>', 'version or draft')
    .option(...PLATFORM_OPTION)
    .action((id: string, opts: { from: string; to: string; platform?: boolean }) => run(async () => {
      const d = await transport().request<{ rules: Array<{ rule: string; change: string }> }>('GET', `${policiesBase(opts)}/${encodeURIComponent(id)}/diff?from=${encodeURIComponent(opts.from)}&to=${encodeURIComponent(opts.to)}`);
      for (const r of d.rules) process.stdout.write(`${r.change === 'added' ? '+' : r.change === 'removed' ? '-' : r.change === 'changed' ? '~' : ' '} ${r.rule}\n`);
    }));
}
