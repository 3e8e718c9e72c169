import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API keys look like `cs_<prefix>_<secret>`. The prefix is public (it finds the row and is safe to log); the
 * secret has 256 bits of entropy and is stored only as its SHA-256 (a slow hash adds nothing at that
 * entropy), compared in constant time.
 */
const TOKEN = /^cs_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

export type NewApiKey = { id: string; prefix: string; token: string; secretHash: string };

export function generateApiKey(): NewApiKey {
  const prefix = randomBytes(9).toString('base64url').toLowerCase().replace(/[^a-z0-9]/g, '0').slice(0, 12);
  const secret = randomBytes(32).toString('base64url');
  return { id: `key_${randomBytes(8).toString('hex')}`, prefix, token: `cs_${prefix}_${secret}`, secretHash: hashSecret(secret) };
}

export function parseApiKey(token: string): { prefix: string; secret: string } | null {
  const m = TOKEN.exec(token);
  return m ? { prefix: m[1]!, secret: m[2]! } : null;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
