import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { CallbackTarget } from './callback-target.ts';

/** At most this much of a receiver's answer is read (and thrown away). */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * POSTs a body to a checked callback target, connecting to its pinned address only: the socket's lookup
 * answers that address whatever the name, so nothing resolves the name a second time. The URL's host still
 * names the Host header and, for https, the TLS server name and the certificate checked. No connection is
 * shared (agent: false): a pooled socket could outlive the check it was made for. Redirects are never
 * followed: a 3xx is answered as a status, and where it points is not visited.
 */
export function postCallback(target: CallbackTarget, body: string, headers: Record<string, string>, timeoutMs: number): Promise<{ status: number }> {
  const pinned: LookupFunction = (_hostname, options, callback) => {
    // net.connect asks for every address (autoSelectFamily) or for one; both get the pinned one only.
    if ((options as { all?: boolean }).all) (callback as unknown as (err: null, addresses: Array<{ address: string; family: number }>) => void)(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
  const { url } = target;
  const send = url.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = send(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      lookup: pinned,
      agent: false,
      signal: AbortSignal.timeout(timeoutMs),
    }, (res) => {
      let read = 0;
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_ANSWER_BYTES) res.destroy();
      });
      res.on('close', () => resolve({ status: res.statusCode ?? 0 }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0 }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
