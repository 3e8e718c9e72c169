import http2 from 'node:http2';
import { isIP } from 'node:net';
import { oneLine, type TemporalSettings } from './connection-settings.ts';

/**
 * One gRPC call (DescribeNamespace) made with Node's own HTTP/2 and TLS, to tell the two ways a connection can
 * fail apart before a process starts serving: Temporal (or the TLS proxy in front of it) is unreachable, which
 * every process waits out, or it refuses our credentials (no or a wrong client certificate, a server certificate
 * our CA does not sign or that names another host, TLS against a plaintext server, a wrong API key, an unknown
 * namespace), which no wait will fix. The SDK's own clients report most of the second kind only as a deadline.
 */
export type TemporalProbe = { kind: 'ok' } | { kind: 'unreachable'; reason: string } | { kind: 'refused'; reason: string };

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);
const GRPC_REFUSALS: Record<string, string> = { '5': 'NOT_FOUND', '7': 'PERMISSION_DENIED', '16': 'UNAUTHENTICATED' };

function hostPort(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) throw new Error(`TEMPORAL_ADDRESS must be host:port, got ${address}`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** DescribeNamespaceRequest { namespace = 1 } as a length-prefixed gRPC message. */
function describeNamespaceFrame(namespace: string): Buffer {
  const name = Buffer.from(namespace, 'utf8');
  const len: number[] = [];
  for (let n = name.length; ; n >>= 7) {
    if (n < 0x80) { len.push(n); break; }
    len.push((n & 0x7f) | 0x80);
  }
  const body = Buffer.concat([Buffer.from([0x0a, ...len]), name]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

export async function probeTemporal(s: TemporalSettings, timeoutMs = 5_000): Promise<TemporalProbe> {
  const { host, port } = hostPort(s.address);
  const tls = s.tls === undefined || s.tls === false ? undefined : s.tls === true ? {} : s.tls;
  const authority = `${tls ? 'https' : 'http'}://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
  const serverName = tls?.serverNameOverride ?? (isIP(host) ? undefined : host);
  return new Promise<TemporalProbe>((resolve) => {
    let done = false;
    const finish = (p: TemporalProbe) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session.destroy();
      resolve(p);
    };
    const timer = setTimeout(() => finish({ kind: 'unreachable', reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
    const session = http2.connect(authority, tls ? {
      ALPNProtocols: ['h2'],
      ...(serverName ? { servername: serverName } : {}),
      ...(tls.serverRootCACertificate ? { ca: Buffer.from(tls.serverRootCACertificate) } : {}),
      ...(tls.clientCertPair ? { cert: Buffer.from(tls.clientCertPair.crt), key: Buffer.from(tls.clientCertPair.key) } : {}),
    } : {});
    const failed = (outer: Error & { code?: string }) => {
      // A stream cancelled because its session failed carries the session's error as its cause.
      const err: Error & { code?: string } = outer.cause instanceof Error ? outer.cause : outer;
      const code = err.code ?? '';
      if (UNREACHABLE.has(code)) return finish({ kind: 'unreachable', reason: `${code} ${oneLine(err)}` });
      const hint = /WRONG_VERSION_NUMBER|wrong version number|packet length too long|record layer failure/i.test(`${code} ${err.message}`) ? ' (TLS is on here, and the server does not speak TLS?)'
        : !tls && /HTTP2|protocol/i.test(`${code} ${err.message}`) ? ' (TLS is off here, and the server wants TLS? set TEMPORAL_TLS=true)'
          : '';
      finish({ kind: 'refused', reason: `${code ? `${code}: ` : ''}${oneLine(err)}${hint}` });
    };
    session.on('error', failed);
    const req = session.request({
      ':method': 'POST',
      ':path': '/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace',
      'content-type': 'application/grpc',
      te: 'trailers',
      'temporal-namespace': s.namespace,
      ...(s.metadata ?? {}),
      ...(s.apiKey !== undefined ? { authorization: `Bearer ${s.apiKey}` } : {}),
    });
    req.on('error', failed);
    const grpcStatus = (headers: http2.IncomingHttpHeaders) => {
      const status = headers['grpc-status'];
      if (status === undefined) return false;
      const code = String(status);
      const message = decodeURIComponent(String(headers['grpc-message'] ?? ''));
      if (code === '0') finish({ kind: 'ok' });
      else if (code === '14') finish({ kind: 'unreachable', reason: `UNAVAILABLE ${message}` });
      else if (code === '5') finish({ kind: 'refused', reason: `namespace ${s.namespace} not found (${message})` });
      else if (GRPC_REFUSALS[code]) finish({ kind: 'refused', reason: `${GRPC_REFUSALS[code]}: ${message}` });
      // Any other answer came from Temporal itself, past TLS and authentication: the SDK takes it from here.
      else finish({ kind: 'ok' });
      return true;
    };
    let answered = false;
    req.on('response', (headers) => {
      answered = true;
      const status = Number(headers[':status']);
      if (status === 502 || status === 503 || status === 504) return finish({ kind: 'unreachable', reason: `HTTP ${status} from a proxy in front of Temporal` });
      if (status !== 200) {
        const hint = status === 400 ? ' (a TLS proxy answers 400 to a missing or refused client certificate)' : status === 401 || status === 403 ? ' (the API key was refused)' : '';
        return finish({ kind: 'refused', reason: `HTTP ${status}${hint}` });
      }
      grpcStatus(headers);
    });
    req.on('trailers', (trailers: http2.IncomingHttpHeaders) => { grpcStatus(trailers); });
    // An HTTP 200 that ends without a gRPC status is still Temporal past TLS and authentication; a stream that
    // closes unanswered is a connection cut (a server restarting, a proxy without a backend).
    req.on('end', () => finish(answered ? { kind: 'ok' } : { kind: 'unreachable', reason: 'connection closed before an answer' }));
    req.on('close', () => finish(answered ? { kind: 'ok' } : { kind: 'unreachable', reason: 'connection closed before an answer' }));
    session.on('close', () => finish({ kind: 'unreachable', reason: 'connection closed before an answer' }));
    req.resume();
    req.end(describeNamespaceFrame(s.namespace));
  });
}

/**
 * Waits while Temporal is unreachable (backoff up to 5 s) and resolves once it accepts our credentials; throws
 * one line when it refuses them, which the caller turns into a refusal to start.
 */
export async function awaitTemporalCredentials(s: TemporalSettings, opts: { signal?: AbortSignal; onWait?: (reason: string, retryMs: number) => void } = {}): Promise<void> {
  let backoff = 250;
  while (!opts.signal?.aborted) {
    const p = await probeTemporal(s);
    if (p.kind === 'ok') return;
    if (p.kind === 'refused') throw temporalRefusal(s, p.reason);
    opts.onWait?.(p.reason, backoff);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, backoff);
      opts.signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
    backoff = Math.min(backoff * 2, 5_000);
  }
}

export function temporalRefusal(s: TemporalSettings, reason: string): Error {
  return new Error(`Temporal at ${s.address} (namespace ${s.namespace}) refused the connection: ${reason}`);
}
