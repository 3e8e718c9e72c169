import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import { print, record, run, transport, UsageError } from './remote.ts';
import type { Transport } from '../../sdk/transport.ts';

const enc = encodeURIComponent;

type PolicyAnswer = Record<string, unknown> & {
  id: string;
  active_version: number | null;
  draft_document?: unknown;
  active?: { document: unknown } | null;
};

type VersionOptions = { version?: string; draft?: boolean };

function versionNumber(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError('--version takes a version number');
  return n;
}

/**
 * The document of one version of a policy: the active one by default, a numbered activated version (read
 * through the signed export, which carries it), or the draft.
 */
export async function policyDocument(t: Transport, id: string, opts: VersionOptions): Promise<unknown> {
  const version = versionNumber(opts.version);
  if (opts.draft && version !== undefined) throw new UsageError('give --version or --draft, not both');
  if (version !== undefined) return (await t.request<{ document: unknown }>('GET', `/v1/policies/${enc(id)}/export`, undefined, { query: { version } })).document;
  const p = await t.request<PolicyAnswer>('GET', `/v1/policies/${enc(id)}`);
  if (opts.draft) {
    if (p.draft_document === null || p.draft_document === undefined) throw new UsageError(`policy ${id} has no draft`);
    return p.draft_document;
  }
  if (!p.active) throw new UsageError(`policy ${id} has no active version (use --draft or --version)`);
  return p.active.document;
}

function render(doc: unknown, yaml: boolean | undefined): string {
  return yaml ? toYaml(doc) : `${JSON.stringify(doc, null, 2)}\n`;
}

/** `countersign policy list|show|get|pull`: reading the tenant's policies (platform policies included, read-only). */
export function registerPolicyReadCommands(policy: Command): void {
  const client = () => transport();
  policy
    .command('list')
    .description("The tenant's policies: id, name, status, active and latest version, scope")
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => run(async () => {
      const { items } = await client().request<{ items: Array<Record<string, unknown>> }>('GET', '/v1/policies');
      const rows = items.map((p) => ({ ...p, scope: (p['scope'] as { level?: string } | undefined)?.level ?? null, draft: p['draft'] ? 'yes' : '-' }));
      print(opts.json, { items }, rows, ['id', 'name', 'status', 'active_version', 'latest_version', 'scope', 'draft']);
    }));

  policy
    .command('show')
    .description('One policy: status, versions, draft and activation review (its documents with get or pull)')
    .argument('<id>')
    .option('--json', 'print JSON (with the documents)')
    .action((id: string, opts: { json?: boolean }) => run(async () => {
      const p = await client().request<PolicyAnswer>('GET', `/v1/policies/${enc(id)}`);
      if (opts.json) return print(true, p);
      const { draft_document: _draft, active, ...summary } = p;
      const versions = await client().request<{ items: Array<Record<string, unknown>> }>('GET', `/v1/policies/${enc(id)}/versions`);
      record(false, { ...summary, active: active ? { ...active, document: undefined } : null, versions: versions.items.map((v) => v['version']) });
    }));

  policy
    .command('get')
    .description('Print the document of policy ID: the active version, --version N, or --draft')
    .argument('<id>')
    .option('--version <n>', 'an activated version')
    .option('--draft', 'the draft')
    .option('--yaml', 'print YAML instead of JSON')
    .action((id: string, opts: VersionOptions & { yaml?: boolean }) => run(async () => {
      process.stdout.write(render(await policyDocument(client(), id, opts), opts.yaml));
    }));

  policy
    .command('pull')
    .description('Write the document of policy ID (or of the policy bound to --agent) to stdout or --out FILE')
    .argument('[id]')
    .option('--agent <id>', 'the policy bound to this agent (its active document)')
    .option('--version <n>', 'an activated version (with ID)')
    .option('--draft', 'the draft (with ID)')
    .option('--yaml', 'YAML instead of JSON')
    .option('--out <file>', 'write here instead of stdout')
    .action((id: string | undefined, opts: VersionOptions & { agent?: string; yaml?: boolean; out?: string }) => run(async () => {
      if ((id === undefined) === (opts.agent === undefined)) throw new UsageError('policy pull takes a policy ID or --agent ID (one of them)');
      let doc: unknown;
      if (opts.agent !== undefined) {
        if (opts.version !== undefined || opts.draft) throw new UsageError('--version and --draft go with a policy ID, not --agent');
        const b = await client().request<{ policy_id: string | null; document: unknown }>('GET', `/v1/agents/${enc(opts.agent)}/binding`);
        if (!b.policy_id) throw new UsageError(`agent ${opts.agent} has no bound policy`);
        doc = b.document;
      } else {
        doc = await policyDocument(client(), id!, opts);
      }
      const text = render(doc, opts.yaml);
      if (opts.out === undefined) process.stdout.write(text);
      else writeFileSync(opts.out, text);
    }));
}
