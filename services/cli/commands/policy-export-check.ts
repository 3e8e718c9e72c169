import { readFileSync } from 'node:fs';
import { EXPORT_FORMAT, verifyExport } from '../../lifecycle/policy-export.ts';
import { EXIT } from '../exit-codes.ts';
import { loadKeys } from './audit-verify.ts';
import { loadClientConfig, record, run, transport } from './remote.ts';

/**
 * `countersign policy validate --file EXPORT.json`: the offline check of a signed policy export (schema, the
 * frozen compiled policy against its hash, the Ed25519 signature), with the same `verifyExport` the import uses.
 * And `policy validate --draft ID`: the server-side validation of a draft against recent runs.
 */
export function isExportFile(file: string): boolean {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return typeof v === 'object' && v !== null && (v as Record<string, unknown>)['format'] === EXPORT_FORMAT;
  } catch {
    return false;
  }
}

/** Default keys: the API the CLI is logged in to, else the local keyring (like `audit verify`). */
function defaultKeys(): string | undefined {
  try {
    return `${loadClientConfig().url.replace(/\/$/, '')}/v1/keys`;
  } catch {
    return undefined;
  }
}

export async function validateExportFile(file: string, opts: { keys?: string; json?: boolean }): Promise<number> {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  let keys;
  try {
    keys = await loadKeys(opts.keys ?? defaultKeys(), {
      stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t), env: process.env, fetch: globalThis.fetch,
    });
  } catch (err) {
    process.stderr.write(`countersign policy validate: ${err instanceof Error ? err.message : String(err)}\n`);
    return (err as { exitCode?: number }).exitCode ?? EXIT.usage;
  }
  const r = verifyExport(raw, keys.set);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(r.ok ? { valid: true, file, policy_id: r.export.policy_id, version: r.export.version, hash: r.export.hash, key_id: r.key_id, keys: keys.source } : { valid: false, file, reason: r.reason, detail: r.detail, errors: r.errors ?? [], keys: keys.source })}\n`);
  } else if (r.ok) {
    process.stdout.write(`${file}: ok: signed export of policy ${r.export.policy_id} v${r.export.version} (${r.export.hash}), signed by ${r.key_id}\n`);
  } else {
    process.stdout.write(`${file}: invalid: ${r.reason}: ${r.detail}\n`);
    for (const e of r.errors ?? []) process.stdout.write(`${file}: ${e.path}: ${e.message}\n`);
  }
  return r.ok ? EXIT.ok : EXIT.failed;
}

export async function validateDraftRemote(id: string, json: boolean | undefined, platform = false): Promise<void> {
  await run(async () => {
    const report = await transport().request<Record<string, unknown>>('POST', `${platform ? '/v1/platform/policies' : '/v1/policies'}/${encodeURIComponent(id)}/validate`, undefined, { retry: false });
    record(json, report);
  });
}
