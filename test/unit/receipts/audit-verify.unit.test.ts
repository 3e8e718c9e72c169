import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SignedReceipt } from '../../../schemas/receipt.ts';
import { registerAuditVerify, runAuditVerify } from '../../../services/cli/commands/audit-verify.ts';
import type { AuditVerifyIo, AuditVerifyOptions } from '../../../services/cli/commands/audit-verify.ts';
import { loadOrCreateKeyring, loadPublicKeys, rotateKeyring } from '../../../services/receipts/keyring.ts';
import type { Keyring } from '../../../services/receipts/keyring.ts';
import { signReceipt } from '../../../services/receipts/sign.ts';
import { sampleReceipt } from './receipt-fixture.ts';

let dir: string;
let keysDir: string;
let keyring: Keyring;
let signed: SignedReceipt;
let receiptFile: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'countersign-audit-verify-'));
  keysDir = join(dir, 'keys');
  keyring = await loadOrCreateKeyring(keysDir);
  signed = signReceipt(sampleReceipt(), keyring);
  receiptFile = join(dir, 'receipt.json');
  await writeFile(receiptFile, JSON.stringify(signed, null, 2));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(file: string, options: AuditVerifyOptions, env: Record<string, string | undefined> = {}) {
  let stdout = '';
  let stderr = '';
  const io: AuditVerifyIo = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env, fetch: globalThis.fetch };
  const code = await runAuditVerify(file, options, io);
  return { code, stdout, stderr };
}

describe('audit verify: key sources', () => {
  it('uses COUNTERSIGN_KEYS_DIR when no --keys is given', async () => {
    const out = await run(receiptFile, {}, { COUNTERSIGN_KEYS_DIR: keysDir });
    expect(out).toEqual({
      code: 0,
      stdout: `valid: ${receiptFile}: receipt dec_01J9Z3K4Q8 (REQUIRE_APPROVAL) signed by ${keyring.activeKeyId} (active key)\n`,
      stderr: '',
    });
  });

  it('falls back to COUNTERSIGN_DATA_DIR/keys', async () => {
    expect((await run(receiptFile, {}, { COUNTERSIGN_DATA_DIR: dir })).code).toBe(0);
  });

  it('reads a JWKS file', async () => {
    const jwks = join(dir, 'jwks.json');
    await writeFile(jwks, JSON.stringify(keyring.publicKeys()));
    expect((await run(receiptFile, { keys: jwks })).code).toBe(0);
  });

  it('reads a keyring directory passed to --keys', async () => {
    expect((await run(receiptFile, { keys: keysDir })).code).toBe(0);
  });

  describe('from a URL', () => {
    let url: string;
    let body = '';
    let status = 200;
    const server = createServer((req, res) => {
      res.writeHead(req.url === '/v1/keys' ? status : 404, { 'content-type': 'application/json' });
      res.end(body);
    });
    beforeAll(async () => {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/keys`;
    });
    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it('verifies against keys served by GET /v1/keys, including retired ones after a rotation', async () => {
      await rotateKeyring(keysDir);
      body = JSON.stringify(await loadPublicKeys(keysDir));
      status = 200;
      const out = await run(receiptFile, { keys: url, json: true });
      expect(out.code).toBe(0);
      expect(JSON.parse(out.stdout)).toEqual({
        valid: true,
        file: receiptFile,
        decision_id: 'dec_01J9Z3K4Q8',
        decision: 'REQUIRE_APPROVAL',
        key_id: keyring.activeKeyId,
        key_status: 'retired',
        keys: url,
      });
    });

    it('exits 3 when the URL answers an error, 2 when it serves something else', async () => {
      status = 503;
      body = '{}';
      expect(await run(receiptFile, { keys: url })).toMatchObject({ code: 3, stdout: '' });
      status = 200;
      body = '{"keys":[{"kid":"k1"}]}';
      const out = await run(receiptFile, { keys: url });
      expect(out.code).toBe(2);
      expect(out.stderr).toContain('not a key set (keys.0.kid');
    });

    it('exits 3 when nothing listens', async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const port = (closed.address() as AddressInfo).port;
      await new Promise((resolve) => closed.close(resolve));
      const out = await run(receiptFile, { keys: `http://127.0.0.1:${port}/v1/keys` });
      expect(out.code).toBe(3);
      expect(out.stderr).toMatch(/cannot fetch keys/);
    });
  });
});

describe('audit verify: verdicts', () => {
  it('exits 1 with the reason on a tampered receipt', async () => {
    await writeFile(receiptFile, JSON.stringify({ ...signed, receipt: { ...signed.receipt, decision: 'ALLOW' } }));
    const out = await run(receiptFile, { keys: keysDir });
    expect(out.code).toBe(1);
    expect(out.stdout).toMatch(/^invalid: .*receipt\.json: bad_signature: /);
  });

  it('exits 1 with the zod path in JSON mode on a malformed receipt', async () => {
    const { head_hash: _dropped, ...receipt } = signed.receipt;
    await writeFile(receiptFile, JSON.stringify({ ...signed, receipt }));
    const out = await run(receiptFile, { keys: keysDir, json: true });
    expect(out.code).toBe(1);
    expect(JSON.parse(out.stdout)).toMatchObject({ valid: false, reason: 'malformed', path: ['receipt', 'head_hash'] });
  });

  it('exits 1 on a file that is not JSON', async () => {
    await writeFile(receiptFile, '{"receipt":');
    const out = await run(receiptFile, { keys: keysDir });
    expect(out.code).toBe(1);
    expect(out.stdout).toContain('malformed: not JSON');
  });

  it('exits 1 on a receipt signed by a key not in the set', async () => {
    const other = await loadOrCreateKeyring(join(dir, 'other'));
    await writeFile(receiptFile, JSON.stringify(signReceipt(sampleReceipt(), other)));
    expect((await run(receiptFile, { keys: keysDir })).stdout).toContain('unknown_key');
  });

  it('exits 2 on a missing receipt file, a missing keyring or a key file that is not a key set', async () => {
    expect((await run(join(dir, 'nope.json'), { keys: keysDir })).code).toBe(2);
    const noKeyring = await run(receiptFile, {}, { COUNTERSIGN_KEYS_DIR: join(dir, 'empty') });
    expect(noKeyring.code).toBe(2);
    expect(noKeyring.stderr).toContain('no keyring in');
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '[1,2]');
    expect((await run(receiptFile, { keys: bad })).code).toBe(2);
    await writeFile(bad, 'not json');
    expect((await run(receiptFile, { keys: bad })).stderr).toContain('keys are not JSON');
  });
});

describe('registerAuditVerify', () => {
  async function cli(args: string[]): Promise<{ code: number; stdout: string }> {
    let stdout = '';
    const program = new Command('countersign').exitOverride();
    const audit = program.command('audit').exitOverride();
    registerAuditVerify(audit, { stdout: (t) => void (stdout += t), stderr: () => undefined, env: { COUNTERSIGN_KEYS_DIR: keysDir } });
    audit.commands.forEach((c) => c.exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined }));
    const saved = process.exitCode;
    try {
      await program.parseAsync(['node', 'countersign', ...args]);
      return { code: typeof process.exitCode === 'number' ? process.exitCode : 0, stdout };
    } finally {
      process.exitCode = saved;
    }
  }

  it('adds `audit verify RECEIPT [--keys] [--json]`', async () => {
    expect(await cli(['audit', 'verify', receiptFile])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^valid: /) as unknown });
    const json = await cli(['audit', 'verify', receiptFile, '--keys', keysDir, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: true, key_status: 'active' });
    await expect(cli(['audit', 'verify'])).rejects.toMatchObject({ code: 'commander.missingArgument' });
  });
});
