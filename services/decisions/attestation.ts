import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Attestation, Attested } from '../../activities/types.ts';
import { canonicalJson } from '../receipts/canonical.ts';
import { MESSAGE_MAX_AGE_MS } from '../../workflows/decision-messages.ts';

/** How old an attestation may be when the worker checks it: an answer is checked within seconds. */
export const ATTESTATION_MAX_AGE_MS = MESSAGE_MAX_AGE_MS;

/** A fresh nonce for one attested message (144 random bits, base64url). */
export const newNonce = (): string => randomBytes(18).toString('base64url');

/**
 * The secret the API and the worker read: from configuration, or the keys directory's attestation.secret.
 * Never generated here: a process that made its own would vouch for messages no other process accepts. A
 * missing secret throws a one-line error naming the file (the process refuses to start).
 */
export function readAttestationSecret(keysDir: string, configured?: string): Buffer {
  if (configured) return Buffer.from(configured, 'utf8');
  const file = path.join(keysDir, 'attestation.secret');
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`no attestation secret: ${file} does not exist and COUNTERSIGN_ATTESTATION_SECRET is not set (the deployment's first start creates it: services/stack/init-keys.ts)`);
    throw err;
  }
  if (text.length < 32) throw new Error(`the attestation secret in ${file} is shorter than 32 characters`);
  return Buffer.from(text, 'utf8');
}

/**
 * The deployment's first start (services/stack/init-keys.ts) and tests only: the secret from configuration, or
 * generated once into the keys directory (exclusive create, so two callers starting together agree).
 */
export function loadAttestationSecret(keysDir: string, configured?: string): Buffer {
  if (configured) return Buffer.from(configured, 'utf8');
  const file = path.join(keysDir, 'attestation.secret');
  mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, randomBytes(32).toString('base64url'), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8');
}

function mac(secret: Buffer, body: unknown, issuedAt: string): string {
  return createHmac('sha256', secret).update(canonicalJson({ body, issued_at: issuedAt })).digest('base64url');
}

export function attest<T extends object>(secret: Buffer, body: T, now: Date): Attested<T> {
  const issued_at = now.toISOString();
  return { ...body, attestation: { issued_at, mac: mac(secret, body, issued_at) } };
}

/** The start of a policy activation review, attested (the MAC covers the kind, so it is no message's MAC). */
export function attestReviewStart<T extends object>(secret: Buffer, start: T, now: Date): T & { attestation: Attestation } {
  const { kind: _k, ...rest } = attest(secret, { kind: 'policy_review_start', ...start }, now);
  return rest as unknown as T & { attestation: Attestation };
}

/** Checks a review start as the workflow received it; no age limit (a worker may pick a start up late). */
export function verifyReviewStart(secret: Buffer, start: { attestation?: Attestation } & Record<string, unknown>): { ok: true } | { ok: false; reason: string } {
  return verifyAttestation(secret, { kind: 'policy_review_start', ...start } as Attested<Record<string, unknown>>, new Date(), Number.POSITIVE_INFINITY);
}

export function verifyAttestation(secret: Buffer, message: Attested<Record<string, unknown>>, now: Date, maxAgeMs = ATTESTATION_MAX_AGE_MS): { ok: true } | { ok: false; reason: string } {
  const { attestation, ...body } = message as Record<string, unknown> & { attestation?: Attestation };
  if (!attestation || typeof attestation.mac !== 'string' || typeof attestation.issued_at !== 'string') return { ok: false, reason: 'the answer did not come through Countersign (no attestation)' };
  const expected = Buffer.from(mac(secret, body, attestation.issued_at));
  const given = Buffer.from(attestation.mac);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'the answer did not come through Countersign (bad attestation)' };
  const age = now.getTime() - Date.parse(attestation.issued_at);
  if (!(age >= -60_000 && age <= maxAgeMs)) return { ok: false, reason: 'the attestation is stale' };
  return { ok: true };
}
