import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { PublicKeySet } from '../../../schemas/receipt.ts';
import { KeyringError, loadPublicKeys } from '../../receipts/keyring.ts';
import { verifyReceipt } from '../../receipts/verify.ts';
import type { VerifyResult } from '../../receipts/verify.ts';
import { EXIT } from '../exit-codes.ts';

/**
 * `countersign audit verify RECEIPT.json [--keys URL|FILE|DIR] [--json]`: offline check of one
 * signed receipt. Needs no database and no running service unless --keys is a URL.
 *
 * Exit codes (services/cli/exit-codes.ts): 0 valid, 1 invalid, 2 usage (missing or unreadable file,
 * bad key set), 3 the key URL could not be reached.
 */
const FETCH_TIMEOUT_MS = 10_000;

export interface AuditVerifyIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Where the default key directory comes from (COUNTERSIGN_KEYS_DIR, COUNTERSIGN_DATA_DIR). */
  env: Record<string, string | undefined>;
  fetch: typeof fetch;
}

export interface AuditVerifyOptions {
  keys?: string;
  json?: boolean;
}

class UsageError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.usage,
  ) {
    super(message);
  }
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function parseKeySet(json: unknown, source: string): PublicKeySet {
  const parsed = PublicKeySet.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`${source}: not a key set (${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'})`);
  }
  return parsed.data;
}

async function fetchKeys(url: string, io: AuditVerifyIo): Promise<PublicKeySet> {
  let response: Response;
  try {
    response = await io.fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  } catch (err) {
    throw new UsageError(`${url}: cannot fetch keys (${describeError(err)})`, EXIT.unavailable);
  }
  if (!response.ok) throw new UsageError(`${url}: cannot fetch keys (HTTP ${response.status})`, EXIT.unavailable);
  let json: unknown;
  try {
    json = await response.json();
  } catch (err) {
    throw new UsageError(`${url}: keys are not JSON (${describeError(err)})`);
  }
  return parseKeySet(json, url);
}

async function readKeyFile(path: string): Promise<PublicKeySet> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`${path}: cannot read keys (${describeError(err)})`);
  }
  try {
    return parseKeySet(JSON.parse(text), path);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${path}: keys are not JSON (${describeError(err)})`);
  }
}

async function readKeyringDir(dir: string): Promise<PublicKeySet> {
  try {
    return await loadPublicKeys(dir);
  } catch (err) {
    if (err instanceof KeyringError) throw new UsageError(`${err.message}; pass --keys URL|FILE`);
    throw err;
  }
}

/** The public keys: --keys as a URL, a JWKS file or a keyring directory; else the local keyring. */
export async function loadKeys(keys: string | undefined, io: AuditVerifyIo): Promise<{ set: PublicKeySet; source: string }> {
  if (keys !== undefined) {
    if (/^https?:\/\//i.test(keys)) return { set: await fetchKeys(keys, io), source: keys };
    const isDir = await stat(keys).then(
      (s) => s.isDirectory(),
      () => false,
    );
    return { set: isDir ? await readKeyringDir(keys) : await readKeyFile(keys), source: keys };
  }
  // Mirrors services/config.ts (keysDir = COUNTERSIGN_KEYS_DIR ?? DATA_DIR/keys) without requiring
  // the server's settings (DATABASE_URL, ...) that an offline check does not need.
  const dir = io.env.COUNTERSIGN_KEYS_DIR ?? join(io.env.COUNTERSIGN_DATA_DIR ?? '.data', 'keys');
  return { set: await readKeyringDir(dir), source: dir };
}

async function readReceipt(file: string): Promise<{ json: unknown } | { notJson: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${file}: cannot read (${describeError(err)})`);
  }
  try {
    return { json: JSON.parse(text) as unknown };
  } catch (err) {
    return { notJson: describeError(err) };
  }
}

function report(file: string, signed: unknown, result: VerifyResult, source: string, options: AuditVerifyOptions, io: AuditVerifyIo): number {
  const receipt = (signed as { receipt?: { decision_id?: string; decision?: string } } | null)?.receipt;
  if (options.json) {
    const body = result.ok
      ? { valid: true, file, decision_id: receipt?.decision_id, decision: receipt?.decision, key_id: result.key_id, key_status: result.key_status, keys: source }
      : { valid: false, file, reason: result.reason, detail: result.detail, path: result.path ?? null, keys: source };
    io.stdout(`${JSON.stringify(body)}\n`);
  } else if (result.ok) {
    io.stdout(`valid: ${file}: receipt ${receipt?.decision_id} (${receipt?.decision}) signed by ${result.key_id} (${result.key_status} key)\n`);
  } else {
    io.stdout(`invalid: ${file}: ${result.reason}: ${result.detail}\n`);
  }
  return result.ok ? EXIT.ok : EXIT.failed;
}

/** The command's logic, separate from commander so tests can give it files, env and fetch. */
export async function runAuditVerify(file: string, options: AuditVerifyOptions, io: AuditVerifyIo): Promise<number> {
  try {
    const input = await readReceipt(file);
    const { set, source } = await loadKeys(options.keys, io);
    if ('notJson' in input) {
      return report(file, null, { ok: false, reason: 'malformed', detail: `not JSON (${input.notJson})`, path: [] }, source, options, io);
    }
    return report(file, input.json, verifyReceipt(input.json, set), source, options, io);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`countersign audit verify: ${err.message}\n`);
    return err.exitCode;
  }
}

const defaultIo = (): AuditVerifyIo => ({
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  fetch: globalThis.fetch,
});

/** Adds `verify` to the `audit` command. */
export function registerAuditVerify(audit: Command, io: Partial<AuditVerifyIo> = {}): void {
  audit
    .command('verify')
    .description('Check one signed receipt offline against the published public keys.')
    .argument('<receipt>', 'signed receipt JSON file (as served by GET /v1/decisions/{id}/receipt)')
    .option('--keys <url|file|dir>', 'public keys: a URL serving them (e.g. http://localhost:8080/v1/keys), a JWKS file, or a keyring directory; default: the local keyring (COUNTERSIGN_KEYS_DIR, else .data/keys)')
    .option('--json', 'print the verdict as one JSON object')
    .action(async (file: string, options: AuditVerifyOptions) => {
      process.exitCode = await runAuditVerify(file, options, { ...defaultIo(), ...io });
    });
}
