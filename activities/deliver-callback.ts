import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { canonicalJson } from '../services/receipts/canonical.ts';
import type { Keyring } from '../services/receipts/keyring.ts';
import { signDocument } from '../services/receipts/sign.ts';
import type { CallbackInput } from './types.ts';

/** Loopback, private, link-local and unspecified addresses: a callback there would let a tenant probe our network. */
export function isPrivateAddress(ip: string): boolean {
  if (isIP(ip) === 6) {
    const v = ip.toLowerCase();
    if (v.startsWith('::ffff:')) return isPrivateAddress(v.slice(7));
    return v === '::1' || v === '::' || v.startsWith('fc') || v.startsWith('fd') || v.startsWith('fe80');
  }
  const [a, b] = ip.split('.').map(Number) as [number, number];
  return a === 10 || a === 127 || a === 0 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127);
}

/**
 * Calls the agent's callback URL when its decision becomes final: a POST of the decision result, signed with
 * the receipt key (header `x-countersign-signature: <key id>.<base64url Ed25519>` over the canonical JSON
 * body, verifiable with GET /v1/keys). Retried by Temporal with backoff; the receiver deduplicates by
 * decision id. Private addresses are refused unless configured (local development and tests).
 */
export function makeDeliverCallback(keyring: () => Promise<Keyring>, allowPrivate: boolean) {
  return async function deliverCallback(input: CallbackInput): Promise<{ status: number }> {
    const url = new URL(input.url);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`callback scheme ${url.protocol} is not allowed`);
    if (!allowPrivate) {
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const addresses = isIP(host) ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
      if (addresses.some(isPrivateAddress)) throw new Error(`callback host ${url.hostname} resolves to a private address`);
    }
    const body = { event: 'decision.final', tenant_id: input.tenantId, decision: input.result };
    const sig = signDocument(body, await keyring());
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-countersign-signature': `${sig.key_id}.${sig.value}`, 'x-countersign-decision': input.decisionId },
      body: canonicalJson(body),
      redirect: 'error',
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status >= 500 || res.status === 429) throw new Error(`callback answered ${res.status}`);
    return { status: res.status };
  };
}
