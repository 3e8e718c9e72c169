import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readdirSync, writeFileSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { CertFiles } from './test-pki.ts';

/** Debian's server binaries, newest first (the stack installs them: services/stack/stack.sh). */
function pgBindir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length === 0) throw new Error('no PostgreSQL server binaries: apt-get install postgresql (make up and make test do)');
  return path.join(root, versions[0]!, 'bin');
}

/**
 * A private Postgres cluster that speaks only TLS (`ssl = on`, pg_hba `hostssl` lines only), for the tests of
 * `sslmode=verify-full`. initdb refuses root, so as root the cluster belongs to the unprivileged `postgres` user.
 */
export async function startTlsPostgres(opts: { dir: string; port: number; server: CertFiles }): Promise<{ superUrl: string; password: string; stop: () => void }> {
  const bin = pgBindir();
  const data = path.join(opts.dir, 'pgdata');
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => execFileSync(asRoot ? 'runuser' : cmd, asRoot ? ['-u', 'postgres', '--', cmd, ...args] : args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  const password = Math.random().toString(36).slice(2);
  const pwfile = path.join(opts.dir, 'pw');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  chmodSync(opts.server.key, 0o600);
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    for (const f of [opts.dir, pwfile, opts.server.cert, opts.server.key]) chownSync(f, uid, gid);
  }
  run(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', `--pwfile=${pwfile}`, '--auth-local=scram-sha-256', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
  appendFileSync(path.join(data, 'postgresql.conf'), [
    "listen_addresses = '127.0.0.1'",
    `port = ${opts.port}`,
    `unix_socket_directories = '${opts.dir}'`,
    'ssl = on',
    `ssl_cert_file = '${opts.server.cert}'`,
    `ssl_key_file = '${opts.server.key}'`,
    'fsync = off',
    'max_connections = 100',
    'shared_buffers = 32MB',
    '',
  ].join('\n'));
  // TLS or nothing: no `host` line, so a plaintext connection finds no entry and is refused.
  writeFileSync(path.join(data, 'pg_hba.conf'), 'local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n');
  run(path.join(bin, 'pg_ctl'), ['-D', data, '-l', path.join(opts.dir, 'postgres.log'), '-w', '-t', '60', 'start']);
  const superUrl = `postgres://postgres:${password}@127.0.0.1:${opts.port}/postgres`;
  return {
    superUrl,
    password,
    stop: () => {
      try {
        run(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch { /* already stopped */ }
    },
  };
}

/** Runs SQL as the cluster's superuser over verified TLS. */
export async function asSuperuser(url: string, ca: string, sql: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: `${url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}` });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}
