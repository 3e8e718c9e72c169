import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import type { CertFiles } from './test-pki.ts';

/** Debian's nginx (services/stack/test.sh installs nginx-light when it is missing). */
export function nginxBinary(): string {
  for (const p of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) if (existsSync(p)) return p;
  throw new Error('nginx is missing: apt-get install nginx-light (make test installs it)');
}

/**
 * A TLS-terminating gRPC proxy in front of the dev server, as a production Temporal is reached: `mtlsPort` wants a
 * client certificate signed by `clientCa`; `apiKeyPort` wants `authorization: Bearer <apiKey>` (an API key), as
 * Temporal Cloud does, and answers 401 otherwise.
 */
export async function startNginxGrpcProxy(opts: { dir: string; upstream: string; server: CertFiles; clientCa: string; mtlsPort: number; apiKeyPort: number; apiKey: string }): Promise<{ stop: () => Promise<void>; log: () => string }> {
  const d = opts.dir;
  for (const t of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(d, `nginx-${t}`), { recursive: true });
  const conf = path.join(d, 'nginx.conf');
  writeFileSync(conf, `daemon off;
master_process off;
pid ${d}/nginx.pid;
error_log ${d}/nginx-error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${d}/nginx-body;
  proxy_temp_path ${d}/nginx-proxy;
  fastcgi_temp_path ${d}/nginx-fastcgi;
  uwsgi_temp_path ${d}/nginx-uwsgi;
  scgi_temp_path ${d}/nginx-scgi;
  ssl_certificate ${opts.server.cert};
  ssl_certificate_key ${opts.server.key};
  grpc_read_timeout 120s;
  grpc_send_timeout 120s;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:${opts.mtlsPort} ssl http2;
    ssl_client_certificate ${opts.clientCa};
    ssl_verify_client on;
    location / { grpc_pass grpc://${opts.upstream}; }
  }
  server {
    listen 127.0.0.1:${opts.apiKeyPort} ssl http2;
    location / {
      if ($http_authorization != "Bearer ${opts.apiKey}") { return 401; }
      grpc_pass grpc://${opts.upstream};
    }
  }
}
`);
  let out = '';
  const child: ChildProcess = spawn(nginxBinary(), ['-c', conf, '-e', path.join(d, 'nginx-error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const listening = (port: number) => new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${out}`);
    if ((await listening(opts.mtlsPort)) && (await listening(opts.apiKeyPort))) break;
    if (i > 100) throw new Error(`nginx did not listen: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    log: () => out,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}
