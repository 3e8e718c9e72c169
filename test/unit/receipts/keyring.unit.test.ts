import { spawn } from 'node:child_process';
import { createHash, createPrivateKey } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PublicKeySet } from '../../../schemas/receipt.ts';
import {
  KeyringError,
  createInMemoryKeyring,
  keyIdFor,
  loadKeyring,
  loadOrCreateKeyring,
  loadPublicKeys,
  privateKeyPath,
  revokeKey,
  rotateKeyring,
} from '../../../services/receipts/keyring.ts';
import { signReceipt } from '../../../services/receipts/sign.ts';
import { verifyReceipt } from '../../../services/receipts/verify.ts';
import { sampleReceipt } from './receipt-fixture.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'countersign-keyring-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function pemFiles(d: string): Promise<string[]> {
  return (await readdir(d)).filter((f) => f.endsWith('.pem')).sort();
}

describe('key ids', () => {
  it('are ed25519: + the first 16 hex chars of sha256 over the raw public key', () => {
    const keyring = createInMemoryKeyring();
    const x = keyring.publicKeys().keys[0]!.x;
    const raw = Buffer.from(x, 'base64url');
    expect(raw).toHaveLength(32);
    expect(keyring.activeKeyId).toBe(`ed25519:${createHash('sha256').update(raw).digest('hex').slice(0, 16)}`);
    expect(keyIdFor(raw)).toBe(keyring.activeKeyId);
    expect(() => keyIdFor(raw.subarray(1))).toThrow(KeyringError);
  });
});

describe('loadOrCreateKeyring', () => {
  it('creates one development key on first use and loads the same key afterwards', async () => {
    const keysDir = join(dir, 'nested', 'keys');
    const first = await loadOrCreateKeyring(keysDir, new Date('2025-02-01T00:00:00.000Z'));
    const second = await loadOrCreateKeyring(keysDir);
    expect(second.activeKeyId).toBe(first.activeKeyId);
    expect(await pemFiles(keysDir)).toEqual([`${first.activeKeyId.replace(':', '-')}.pem`]);
    expect(first.publicKeys().keys).toEqual([
      expect.objectContaining({ kid: first.activeKeyId, status: 'active', created_at: '2025-02-01T00:00:00.000Z' }),
    ]);
    // No temporary or lock files are left behind.
    expect((await readdir(keysDir)).sort()).toEqual([`${first.activeKeyId.replace(':', '-')}.pem`, 'keyring.json']);
  });

  it('writes the private key with mode 0600 and refuses to load one others can read', async () => {
    const keyring = await loadOrCreateKeyring(dir);
    const path = privateKeyPath(dir, keyring.activeKeyId);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    await chmod(path, 0o644);
    await expect(loadKeyring(dir)).rejects.toThrow(/readable by others/);
  });

  it('ends with exactly one key when many calls in one process race', async () => {
    const keyrings = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateKeyring(dir)));
    expect(new Set(keyrings.map((k) => k.activeKeyId)).size).toBe(1);
    expect(await pemFiles(dir)).toHaveLength(1);
    expect((await loadPublicKeys(dir)).keys).toHaveLength(1);
  });

  it('ends with exactly one key when separate processes start at once', async () => {
    const script = join(import.meta.dirname, 'fixtures', 'load-or-create-keyring.ts');
    const goFile = join(dir, 'go');
    const keysDir = join(dir, 'keys');
    const children = Array.from({ length: 4 }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', script, keysDir, goFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const ready = new Promise<void>((resolve) => child.stdout.on('data', () => resolve()));
      const done = new Promise<string>((resolve, reject) =>
        child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited ${code}: ${err}`)))),
      );
      return { ready, done };
    });
    // Release every child at once, after all of them have started: the race is real, not serial.
    await Promise.all(children.map((c) => c.ready));
    await writeFile(goFile, '');
    const outputs = await Promise.all(children.map((c) => c.done));
    const ids = outputs.map((o) => o.trim().split('\n').at(-1));
    expect(ids.every((id) => /^ed25519:[0-9a-f]{16}$/.test(id ?? ''))).toBe(true);
    expect(new Set(ids).size).toBe(1);
    expect(await pemFiles(keysDir)).toEqual([`${ids[0]!.replace(':', '-')}.pem`]);
    expect((await loadKeyring(keysDir)).activeKeyId).toBe(ids[0]);
  }, 30_000);

  it('reports a corrupt keyring instead of replacing it', async () => {
    await loadOrCreateKeyring(dir);
    await writeFile(join(dir, 'keyring.json'), '{"version":1,"keys":[]}');
    await expect(loadOrCreateKeyring(dir)).rejects.toMatchObject({ name: 'KeyringError', code: 'invalid' });
  });

  it('loadKeyring and loadPublicKeys do not create anything', async () => {
    await expect(loadKeyring(dir)).rejects.toMatchObject({ code: 'not_found' });
    await expect(loadPublicKeys(dir)).rejects.toMatchObject({ code: 'not_found' });
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('rotateKeyring', () => {
  it('makes a new active key, retires the old one, and old receipts stay verifiable', async () => {
    const before = await loadOrCreateKeyring(dir);
    const oldReceipt = signReceipt(sampleReceipt(), before);

    const after = await rotateKeyring(dir, new Date('2025-06-01T00:00:00.000Z'));
    expect(after.activeKeyId).not.toBe(before.activeKeyId);
    const published = await loadPublicKeys(dir);
    expect(published.keys.map((k) => [k.kid, k.status])).toEqual([
      [before.activeKeyId, 'retired'],
      [after.activeKeyId, 'active'],
    ]);

    // New receipts are signed with the new key; both old and new verify against the published set.
    const newReceipt = signReceipt(sampleReceipt({ decision_id: 'dec_new' }), after);
    expect(newReceipt.signature.key_id).toBe(after.activeKeyId);
    expect(verifyReceipt(newReceipt, published)).toEqual({ ok: true, key_id: after.activeKeyId, key_status: 'active' });
    expect(verifyReceipt(oldReceipt, published)).toEqual({ ok: true, key_id: before.activeKeyId, key_status: 'retired' });

    // The retired private key is gone from disk; a fresh load signs with the new key.
    expect(await pemFiles(dir)).toEqual([`${after.activeKeyId.replace(':', '-')}.pem`]);
    expect((await loadOrCreateKeyring(dir)).activeKeyId).toBe(after.activeKeyId);
  });

  it('two concurrent rotations keep every key', async () => {
    const k0 = await loadOrCreateKeyring(dir);
    const [a, b] = await Promise.all([rotateKeyring(dir), rotateKeyring(dir)]);
    const published = await loadPublicKeys(dir);
    expect(published.keys).toHaveLength(3);
    expect(published.keys.filter((k) => k.status === 'active')).toHaveLength(1);
    expect(published.keys.map((k) => k.kid)).toContain(k0.activeKeyId);
    expect(await pemFiles(dir)).toHaveLength(1);
    const final = await loadKeyring(dir);
    expect([a.activeKeyId, b.activeKeyId]).toContain(final.activeKeyId);
  });
});

describe('revokeKey', () => {
  it('revokes a retired key, after which its receipts fail with key_revoked', async () => {
    const old = await loadOrCreateKeyring(dir);
    const receipt = signReceipt(sampleReceipt(), old);
    await expect(revokeKey(dir, old.activeKeyId)).rejects.toThrow(/rotate first/);
    await rotateKeyring(dir);
    await revokeKey(dir, old.activeKeyId);
    expect(verifyReceipt(receipt, await loadPublicKeys(dir))).toMatchObject({ ok: false, reason: 'key_revoked' });
    await expect(revokeKey(dir, 'ed25519:0000000000000000')).rejects.toThrow(/no key/);
  });
});

describe('private key material never leaves the keyring', () => {
  it('publicKeys() is the JWKS shape and holds public halves only', async () => {
    const keyring = await loadOrCreateKeyring(dir);
    await rotateKeyring(dir);
    const jwks = (await loadKeyring(dir)).publicKeys();
    expect(PublicKeySet.parse(jwks)).toEqual(jwks);
    for (const key of jwks.keys) {
      expect(Object.keys(key).sort()).toEqual(['created_at', 'crv', 'kid', 'kty', 'status', 'x']);
      expect(key).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
    }
    const text = JSON.stringify(jwks);
    expect(text).not.toMatch(/PRIVATE|"d"/);

    // The private scalar (JWK `d`) appears nowhere a caller can reach: not in the key set, not
    // in the serialised or inspected keyring object.
    const current = await loadKeyring(dir);
    const pem = await readFile(privateKeyPath(dir, current.activeKeyId), 'utf8');
    const d = createPrivateKey(pem).export({ format: 'jwk' }).d!;
    expect(d).toHaveLength(43);
    for (const shown of [text, JSON.stringify(current), inspect(current, { depth: 10, showHidden: true })]) {
      expect(shown).not.toContain(d);
      expect(shown).not.toContain('PRIVATE KEY');
    }
    expect(JSON.stringify(keyring)).toBe(JSON.stringify({ active_key_id: keyring.activeKeyId }));
    expect(await readFile(join(dir, 'keyring.json'), 'utf8')).not.toContain(d);
  });
});
