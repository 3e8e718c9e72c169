import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { SigningKeyId, SigningKeyStatus, PublicSigningKey } from '../../schemas/receipt.ts';
import type { PublicKeySet, DocumentSignature } from '../../schemas/receipt.ts';

/**
 * The Ed25519 signing keys, kept in a directory:
 *
 *   <dir>/keyring.json             the key list (public halves, status, dates): safe to publish
 *   <dir>/ed25519-<16 hex>.pem     the PKCS#8 private key of the active key, mode 0600
 *
 * One key is active and signs; retired keys only verify, so receipts signed before a rotation stay
 * verifiable. A retired key's private file is deleted at rotation: it will never sign again, and a
 * private key that is not on disk cannot leak. Revoked keys verify nothing.
 *
 * Hazard: several processes (API, worker, CLI) may open the same directory at once. Every file is
 * written to a temporary name and then published atomically (link for first creation, so exactly
 * one creator wins; rename under a lock file for later changes), so nobody reads a half-written
 * file and nobody signs with a key that is not in keyring.json.
 */

const KEYRING_FILE = 'keyring.json';
const LOCK_FILE = 'keyring.lock';
/** A lock older than this belongs to a crashed process; rotations take milliseconds. */
const STALE_LOCK_MS = 30_000;
const LOCK_WAIT_MS = 10_000;

const Instant = z.iso.datetime({ offset: true });

const StoredKey = z.strictObject({
  kid: SigningKeyId,
  x: PublicSigningKey.shape.x,
  status: SigningKeyStatus,
  created_at: Instant,
  retired_at: Instant.optional(),
  revoked_at: Instant.optional(),
});
type StoredKey = z.infer<typeof StoredKey>;

const KeyringFile = z
  .strictObject({ version: z.literal(1), keys: z.array(StoredKey).min(1) })
  .refine((f) => f.keys.filter((k) => k.status === 'active').length === 1, {
    message: 'a keyring has exactly one active key',
    path: ['keys'],
  });
type KeyringFile = z.infer<typeof KeyringFile>;

/** `not_found`: no keyring.json in the directory; `invalid`: files are inconsistent; `busy`: the lock is held. */
export type KeyringErrorCode = 'not_found' | 'invalid' | 'busy';

export class KeyringError extends Error {
  override readonly name = 'KeyringError';
  constructor(
    readonly code: KeyringErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** `ed25519:` + the first 16 hex chars of sha256 over the raw 32-byte public key. */
export function keyIdFor(rawPublicKey: Uint8Array): string {
  if (rawPublicKey.length !== 32) throw new KeyringError('invalid', `an Ed25519 public key has 32 bytes, got ${rawPublicKey.length}`);
  return `ed25519:${createHash('sha256').update(rawPublicKey).digest('hex').slice(0, 16)}`;
}

/** The raw public key (`x`, base64url) of an Ed25519 key object. */
function rawPublicKeyOf(key: KeyObject): string {
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
    throw new KeyringError('invalid', 'not an Ed25519 key');
  }
  return jwk.x;
}

function keyIdForX(x: string): string {
  return keyIdFor(Buffer.from(x, 'base64url'));
}

/**
 * A loaded keyring. The private key lives in a private field: it is never returned, serialised
 * (JSON.stringify sees no fields holding it) or printed.
 */
export class Keyring {
  readonly #signingKey: KeyObject;
  readonly #keys: readonly StoredKey[];
  readonly activeKeyId: string;

  /** Use loadKeyring / loadOrCreateKeyring / createInMemoryKeyring. */
  constructor(signingKey: KeyObject, keys: readonly StoredKey[]) {
    const active = keys.find((k) => k.status === 'active');
    if (!active) throw new KeyringError('invalid', 'a keyring needs an active key');
    if (rawPublicKeyOf(signingKey) !== active.x) {
      throw new KeyringError('invalid', `the private key does not match the active key ${active.kid}`);
    }
    this.#signingKey = signingKey;
    this.#keys = keys.map((k) => ({ ...k }));
    this.activeKeyId = active.kid;
  }

  /** Ed25519 over exactly these bytes, with the active key. Callers sign canonical JSON (sign.ts). */
  sign(bytes: Uint8Array): DocumentSignature {
    return {
      alg: 'Ed25519',
      key_id: this.activeKeyId,
      value: sign(null, bytes, this.#signingKey).toString('base64url'),
    };
  }

  /** The JWKS-like set `GET /v1/keys` serves: public halves only. */
  publicKeys(): PublicKeySet {
    return { keys: this.#keys.map(toPublicKey) };
  }

  toJSON(): { active_key_id: string } {
    return { active_key_id: this.activeKeyId };
  }
}

function toPublicKey(k: StoredKey): PublicSigningKey {
  return { kid: k.kid, kty: 'OKP', crv: 'Ed25519', x: k.x, status: k.status, created_at: k.created_at };
}

function newKey(now: Date): { key: StoredKey; privateKey: KeyObject } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const x = rawPublicKeyOf(privateKey);
  return { key: { kid: keyIdForX(x), x, status: 'active', created_at: now.toISOString() }, privateKey };
}

/** A keyring that exists only in memory: for tests and one-off tools, never for receipts you keep. */
export function createInMemoryKeyring(now: Date = new Date()): Keyring {
  const { key, privateKey } = newKey(now);
  return new Keyring(privateKey, [key]);
}

// --- files ---------------------------------------------------------------------------------------

/** Where the private key of `kid` lives in `dir` (exported for tests and operators' tooling). */
export function privateKeyPath(dir: string, kid: string): string {
  // `:` is not portable in file names.
  return join(dir, `${kid.replace(':', '-')}.pem`);
}

function tempPath(dir: string, name: string): string {
  return join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** Write, flush and close a new file; it is published by the caller with link or rename. */
async function writeNewFile(path: string, content: string, mode: number): Promise<void> {
  const handle = await open(path, 'wx', mode);
  try {
    await handle.writeFile(content, 'utf8');
    // The umask may have narrowed the mode but never widens it; set it exactly anyway.
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function serialise(file: KeyringFile): string {
  return `${JSON.stringify(file, null, 2)}\n`;
}

async function writePrivateKey(dir: string, kid: string, privateKey: KeyObject): Promise<string> {
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
  const target = privateKeyPath(dir, kid);
  const tmp = tempPath(dir, 'key');
  await writeNewFile(tmp, typeof pem === 'string' ? pem : pem.toString('utf8'), 0o600);
  await rename(tmp, target);
  return target;
}

async function readKeyringFile(dir: string): Promise<KeyringFile> {
  const path = join(dir, KEYRING_FILE);
  const text = await readFile(path, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new KeyringError('invalid', `${path}: not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const parsed = KeyringFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KeyringError('invalid', `${path}: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`);
  }
  for (const k of parsed.data.keys) {
    if (keyIdForX(k.x) !== k.kid) throw new KeyringError('invalid', `${path}: key id ${k.kid} does not match its public key`);
  }
  return parsed.data;
}

async function readPrivateKey(dir: string, kid: string): Promise<KeyObject> {
  const path = privateKeyPath(dir, kid);
  const info = await stat(path).catch((err: unknown) => {
    throw new KeyringError('invalid', `${path}: cannot read the private key of the active key ${kid} (${errnoCode(err) ?? String(err)})`);
  });
  // Like ssh, refuse a private key others can read: it may already have leaked.
  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    throw new KeyringError('invalid', `${path}: private key is readable by others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
  }
  return createPrivateKey(await readFile(path, 'utf8'));
}

/** The keyring in `dir`; throws KeyringError when it is missing or inconsistent. */
export async function loadKeyring(dir: string): Promise<Keyring> {
  let file: KeyringFile;
  try {
    file = await readKeyringFile(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new KeyringError('not_found', `no keyring in ${dir} (expected ${join(dir, KEYRING_FILE)})`);
    throw err;
  }
  const active = file.keys.find((k) => k.status === 'active');
  if (!active) throw new KeyringError('invalid', 'a keyring has exactly one active key');
  return new Keyring(await readPrivateKey(dir, active.kid), file.keys);
}

/** The public keys in `dir`, without touching any private key: what a verifier needs. */
export async function loadPublicKeys(dir: string): Promise<PublicKeySet> {
  try {
    const file = await readKeyringFile(dir);
    return { keys: file.keys.map(toPublicKey) };
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new KeyringError('not_found', `no keyring in ${dir} (expected ${join(dir, KEYRING_FILE)})`);
    throw err;
  }
}

/**
 * Create the keyring with one key unless it exists. `link` fails when the target exists, so when
 * two processes race exactly one keyring.json is published; the loser deletes its private key and
 * both load the winner's file.
 */
async function createKeyringOnce(dir: string, now: Date): Promise<void> {
  const { key, privateKey } = newKey(now);
  const privatePath = await writePrivateKey(dir, key.kid, privateKey);
  const tmp = tempPath(dir, KEYRING_FILE);
  try {
    await writeNewFile(tmp, serialise({ version: 1, keys: [key] }), 0o644);
    await link(tmp, join(dir, KEYRING_FILE));
  } catch (err) {
    await rm(privatePath, { force: true });
    if (errnoCode(err) !== 'EEXIST') throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}

/** The keyring in `dir`, generating a development key on first use. Safe to call from many processes. */
export async function loadOrCreateKeyring(dir: string, now: Date = new Date()): Promise<Keyring> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    return await loadKeyring(dir);
  } catch (err) {
    if (!(err instanceof KeyringError) || err.code !== 'not_found') throw err;
  }
  await createKeyringOnce(dir, now);
  return loadKeyring(dir);
}

/** Run `fn` holding `<dir>/keyring.lock`, so two rotations cannot lose one another's key. */
async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lockPath = join(dir, LOCK_FILE);
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      break;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      const info = await stat(lockPath).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs > STALE_LOCK_MS) {
        await rm(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new KeyringError('busy', `${lockPath} is held by another process; retry, or delete it if no process is rotating keys`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockPath, { force: true });
  }
}

async function replaceKeyringFile(dir: string, file: KeyringFile): Promise<void> {
  const tmp = tempPath(dir, KEYRING_FILE);
  try {
    await writeNewFile(tmp, serialise(KeyringFile.parse(file)), 0o644);
    await rename(tmp, join(dir, KEYRING_FILE));
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Make a new active key and retire the old one. Old receipts stay verifiable: the retired key's
 * public half stays in keyring.json. Processes that loaded the keyring earlier keep signing with
 * the retired key until they reload, and those signatures still verify.
 */
export async function rotateKeyring(dir: string, now: Date = new Date()): Promise<Keyring> {
  await withLock(dir, async () => {
    const file = await readKeyringFile(dir);
    const { key, privateKey } = newKey(now);
    await writePrivateKey(dir, key.kid, privateKey);
    const retired = file.keys.map((k) =>
      k.status === 'active' ? { ...k, status: 'retired' as const, retired_at: now.toISOString() } : k,
    );
    await replaceKeyringFile(dir, { version: 1, keys: [...retired, key] });
    // Only once the new file is published: until then the old key is still the active one.
    for (const k of file.keys) if (k.status === 'active') await rm(privateKeyPath(dir, k.kid), { force: true });
  });
  return loadKeyring(dir);
}

/**
 * Mark a retired key revoked: signatures by it no longer verify. The active key cannot be revoked
 * directly; rotate first, so there is always a key to sign with.
 */
export async function revokeKey(dir: string, kid: string, now: Date = new Date()): Promise<void> {
  await withLock(dir, async () => {
    const file = await readKeyringFile(dir);
    const target = file.keys.find((k) => k.kid === kid);
    if (!target) throw new KeyringError('invalid', `no key ${kid} in ${dir}`);
    if (target.status === 'active') throw new KeyringError('invalid', `${kid} is the active key: rotate first, then revoke it`);
    if (target.status === 'revoked') return;
    const keys = file.keys.map((k) => (k.kid === kid ? { ...k, status: 'revoked' as const, revoked_at: now.toISOString() } : k));
    await replaceKeyringFile(dir, { version: 1, keys });
    await rm(privateKeyPath(dir, kid), { force: true });
  });
}
