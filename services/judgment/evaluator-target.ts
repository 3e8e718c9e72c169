import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { checkCallbackUrl, type CallbackTarget, type Resolver } from '../callbacks/callback-target.ts';

/**
 * Where the evaluator is asked: its URL checked like a callback URL (services/callbacks), so a tenant cannot
 * point the worker at a private, loopback or metadata address, and pinned: every request connects to the
 * address checked, never resolving the name again (DNS rebinding gets nowhere). The operator may allow-list
 * hosts (COUNTERSIGN_EVALUATOR_ALLOW_HOSTS: `host` or `host:port`), e.g. a model server on the private network;
 * those skip the address check but are still pinned.
 */
export type TargetCheck = { ok: true; target: CallbackTarget } | { ok: false; reason: string };

export async function checkEvaluatorUrl(raw: string, opts: { allowHosts?: string[]; resolve?: Resolver } = {}): Promise<TargetCheck> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: 'the evaluator url is not a URL' };
  }
  const allowed = (opts.allowHosts ?? []).some((h) => h.toLowerCase() === url.host.toLowerCase() || h.toLowerCase() === url.hostname.toLowerCase());
  const check = await checkCallbackUrl(raw, { allowPrivate: allowed, ...(opts.resolve ? { resolve: opts.resolve } : {}) });
  return check.ok ? check : { ok: false, reason: check.reason.replace(/^callback /, 'evaluator ').replace(/callback_url/g, 'evaluator url') };
}

/** At most this much of an evaluator's answer is read; more is an error (no verdict needs it). */
export const MAX_ANSWER_BYTES = 256 * 1024;

/**
 * A fetch for the OpenAI client that only reaches the checked target: same origin, pinned address, no pooled
 * socket, no redirect followed, the answer bounded. Anything else is refused before a byte is sent.
 */
export function pinnedFetch(target: CallbackTarget): typeof fetch {
  const pinned: LookupFunction = (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all) (callback as unknown as (err: null, addresses: Array<{ address: string; family: number }>) => void)(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
  return (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    if (url.origin !== target.url.origin) throw new Error(`the evaluator client asked for ${url.origin}, not the checked ${target.url.origin}`);
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => { headers[k] = v; });
    const body = typeof init?.body === 'string' ? init.body : init?.body === undefined || init.body === null ? undefined : null;
    if (body === null) throw new Error('the evaluator client sent a body that is not text');
    const send = url.protocol === 'https:' ? https.request : http.request;
    return new Promise<Response>((resolve, reject) => {
      const req = send(url, {
        method: init?.method ?? 'GET',
        headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) },
        lookup: pinned,
        agent: false,
        ...(init?.signal ? { signal: init.signal } : {}),
      }, (res) => {
        const chunks: Buffer[] = [];
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) {
            res.destroy();
            reject(new Error(`the evaluator answered more than ${MAX_ANSWER_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
          const status = res.statusCode ?? 502;
          // A redirect is answered as an error status: where it points is never visited.
          resolve(new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status: status >= 300 && status < 400 ? 502 : status, headers: h }));
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  });
}
