import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { temporalSettings } from '../../../services/temporal/connection-settings.ts';
import { probeTemporal } from '../../../services/temporal/credentials-check.ts';

const servers: Array<{ close: () => void }> = [];
afterAll(() => { for (const s of servers) s.close(); });

async function listen(server: net.Server | http2.Http2Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

/** A plaintext gRPC stand-in that answers every call with the given HTTP status and gRPC trailers. */
const grpcAnswering = (status: number, grpc?: { code: number; message: string }) => listen(http2.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(status, { 'content-type': 'application/grpc' });
    if (grpc) res.addTrailers({ 'grpc-status': String(grpc.code), 'grpc-message': encodeURIComponent(grpc.message) });
    res.end();
  });
}));

describe('probeTemporal: unreachable (waited out) or refused (refuse to start)', () => {
  it('tells each answer apart', async () => {
    const cases: Array<{ what: string; address: () => Promise<string>; kind: 'ok' | 'unreachable' | 'refused' }> = [
      { what: 'gRPC OK', address: () => grpcAnswering(200, { code: 0, message: '' }), kind: 'ok' },
      { what: 'UNAUTHENTICATED', address: () => grpcAnswering(200, { code: 16, message: 'bad key' }), kind: 'refused' },
      { what: 'PERMISSION_DENIED', address: () => grpcAnswering(200, { code: 7, message: 'no' }), kind: 'refused' },
      { what: 'namespace NOT_FOUND', address: () => grpcAnswering(200, { code: 5, message: 'Namespace x is not found.' }), kind: 'refused' },
      { what: 'UNAVAILABLE', address: () => grpcAnswering(200, { code: 14, message: 'starting' }), kind: 'unreachable' },
      { what: 'a proxy\'s 400 (client certificate)', address: () => grpcAnswering(400), kind: 'refused' },
      { what: 'a proxy\'s 401 (API key)', address: () => grpcAnswering(401), kind: 'refused' },
      { what: 'a proxy\'s 502 (no backend)', address: () => grpcAnswering(502), kind: 'unreachable' },
      { what: 'a connection accepted and closed', address: () => listen(net.createServer((s) => s.destroy())), kind: 'unreachable' },
      { what: 'a connection accepted and ended', address: () => listen(net.createServer((s) => s.end())), kind: 'unreachable' },
      { what: 'nothing listening', address: async () => { const a = await listen(net.createServer()); servers.pop()!.close(); return a; }, kind: 'unreachable' },
    ];
    const wrong: string[] = [];
    for (const c of cases) {
      const p = await probeTemporal({ address: await c.address(), namespace: 'default' }, 3_000);
      if (p.kind !== c.kind) wrong.push(`${c.what}: ${JSON.stringify(p)}`);
    }
    console.log(`attack temporal-probe-misread: ${cases.length} attempts, ${wrong.length} got through`);
    expect(wrong).toEqual([]);
  });

  it('sends the API key as a bearer token and the namespace', async () => {
    let seen: http2.IncomingHttpHeaders = {};
    const address = await listen(http2.createServer((req, res) => {
      seen = req.headers;
      req.resume();
      req.on('end', () => { res.writeHead(200, { 'content-type': 'application/grpc' }); res.addTrailers({ 'grpc-status': '0' }); res.end(); });
    }));
    // TEMPORAL_TLS=false: the API key would otherwise turn TLS on.
    const s = temporalSettings({ TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: 'payments', TEMPORAL_API_KEY: 'tk_1', TEMPORAL_TLS: 'false' });
    expect(await probeTemporal(s)).toEqual({ kind: 'ok' });
    expect(seen).toMatchObject({ authorization: 'Bearer tk_1', 'temporal-namespace': 'payments', ':path': '/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace' });
  });

  it('settings: a profile file that does not exist, or a certificate without its key, is a configuration error', () => {
    expect(() => temporalSettings({ TEMPORAL_CONFIG_FILE: '/nonexistent/temporal.toml' })).toThrow(/no file/);
    expect(() => temporalSettings({ TEMPORAL_TLS_CLIENT_CERT_PATH: '/etc/hostname' })).toThrow(/needs its key/);
    expect(temporalSettings({ TEMPORAL_ADDRESS: '' })).toEqual({ address: '127.0.0.1:7233', namespace: 'default' });
  });
});
