import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { CountersignError } from '../errors.ts';
import { addressRefusal, canonicalAddress } from './callback-address.ts';

/** Resolves a host name to every address it has (the system resolver by default; tests inject their own). */
export type Resolver = (hostname: string) => Promise<Array<{ address: string }>>;

/** How long a name may take to resolve before the callback is refused as not resolving. */
const RESOLVE_TIMEOUT_MS = 5_000;

export const systemResolver: Resolver = (hostname) => {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`resolving ${hostname} took over ${RESOLVE_TIMEOUT_MS} ms`), { code: 'ETIMEOUT' })), RESOLVE_TIMEOUT_MS);
  });
  return Promise.race([lookup(hostname, { all: true, verbatim: true }), timeout]).finally(() => clearTimeout(timer));
};

/** Where a callback goes: the URL as given (its host names the TLS server and the Host header) and the one address it connects to. */
export type CallbackTarget = { url: URL; address: string; family: 4 | 6 };

export type TargetCheck = { ok: true; target: CallbackTarget } | { ok: false; reason: string };

/**
 * Checks a callback URL and pins the address it will be delivered to. The host is resolved once, here; a
 * name with any refused address is refused (the resolver's order, or a later answer, could pick that one),
 * and the delivery then connects to the first address checked here, never resolving again, so a name that
 * answers a public address to the check and a private one to the connection (DNS rebinding) gets nowhere.
 * `allowPrivate` (development only) skips the address check but still pins.
 */
export async function checkCallbackUrl(raw: string, opts: { resolve?: Resolver; allowPrivate?: boolean } = {}): Promise<TargetCheck> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: 'callback_url is not a URL' };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { ok: false, reason: `callback scheme ${url.protocol} is not allowed` };
  if (url.username || url.password) return { ok: false, reason: 'callback_url must not carry credentials' };
  // The WHATWG parser has already turned every IPv4 spelling (0177.0.0.1, 0x7f000001, 2130706433, 127.1) into
  // dotted decimal and compressed IPv6; judgeAddress parses the bytes again in any case.
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  if (isIP(host)) {
    addresses = [host];
  } else {
    try {
      addresses = (await (opts.resolve ?? systemResolver)(host)).map((a) => a.address);
    } catch (err) {
      const code = (err as { code?: string }).code;
      return { ok: false, reason: `callback host ${url.hostname} does not resolve${code ? ` (${code})` : ''}` };
    }
    if (addresses.length === 0) return { ok: false, reason: `callback host ${url.hostname} does not resolve` };
  }
  const pinned = canonicalAddress(addresses[0]!);
  if (!pinned) return { ok: false, reason: `callback host ${url.hostname} resolves to ${addresses[0]!}, which is not an IP address` };
  if (!opts.allowPrivate) {
    for (const address of addresses) {
      const refusal = addressRefusal(address);
      if (refusal) return { ok: false, reason: isIP(host) ? `callback host ${refusal}` : `callback host ${url.hostname} resolves to ${refusal}` };
    }
  }
  return { ok: true, target: { url, ...pinned } };
}

/** The API's check of a decision request's callback_url: a 422 naming the field, or nothing. */
export async function requireSafeCallbackUrl(raw: string, opts: { resolve?: Resolver; allowPrivate?: boolean }): Promise<void> {
  const check = await checkCallbackUrl(raw, opts);
  if (!check.ok) throw new CountersignError('unprocessable', check.reason, { errors: [{ path: 'callback_url', message: check.reason }] });
}
