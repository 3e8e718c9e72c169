import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPrincipal, api, eventually, freePort, startTestStack, type TestStack } from './harness.ts';
import { asSuperuser, startTlsPostgres } from './tls-postgres-cluster.ts';
import { makeTestPki, type TestPki } from './test-pki.ts';

/**
 * Postgres reached the production way: a server with `ssl = on` that accepts only TLS, and every process
 * connecting with `sslmode=verify-full` and the CA that signed it (URL parameters, as libpq spells them).
 */
describe('Postgres over verified TLS', () => {
  let dir: string;
  let pki: TestPki;
  let cluster: Awaited<ReturnType<typeof startTlsPostgres>>;
  let port: number;
  let stack: TestStack | undefined;
  const saved = { url: process.env['DATABASE_URL'], admin: process.env['DATABASE_ADMIN_URL'] };
  const tlsUrl = (user: string, password: string, db: string, params: string) => `postgres://${user}:${password}@127.0.0.1:${port}/${db}${params ? `?${params}` : ''}`;
  const verifyFull = (ca: string) => `sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`;
  const appPassword = `app_${Math.random().toString(36).slice(2)}`;
  const ownerPassword = `owner_${Math.random().toString(36).slice(2)}`;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'cs-pg-tls-'));
    pki = makeTestPki(dir);
    const server = pki.issue('pg-server', pki.ca, 'IP:127.0.0.1');
    port = await freePort();
    cluster = await startTlsPostgres({ dir, port, server });
    await asSuperuser(cluster.superUrl, pki.ca.cert, `CREATE ROLE countersign_owner LOGIN CREATEDB PASSWORD '${ownerPassword}'; CREATE ROLE countersign_app LOGIN PASSWORD '${appPassword}'`);
    await asSuperuser(cluster.superUrl, pki.ca.cert, 'CREATE DATABASE countersign OWNER countersign_owner');
    // The harness makes each test database from these (test/int/harness.ts stackEnv).
    process.env['DATABASE_URL'] = tlsUrl('countersign_app', appPassword, 'countersign', verifyFull(pki.ca.cert));
    process.env['DATABASE_ADMIN_URL'] = tlsUrl('countersign_owner', ownerPassword, 'countersign', verifyFull(pki.ca.cert));
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    process.env['DATABASE_URL'] = saved.url;
    process.env['DATABASE_ADMIN_URL'] = saved.admin;
    cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('migrations, the API, the worker and the publisher all connect with sslmode=verify-full, and decisions flow', async () => {
    stack = await startTestStack({ COUNTERSIGN_PG_POOL_MAX: '4' });
    const bot = await addPrincipal(stack, { name: 'pg-tls-bot', kind: 'agent', roles: ['agent'] });
    const res = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'pg-tls-bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 120 } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const id = res.body.decision_id as string;
    await eventually(async () => {
      const r = await api({ url: stack!.url, key: bot.key }, 'GET', `/v1/decisions/${id}/receipt`);
      return r.status === 200 ? r.body : undefined;
    }, 60_000, 'the receipt');
    // Published to Kafka too: the publisher read the log over TLS.
    await eventually(async () => {
      const r = await stack!.db.query<{ n: string }>("SELECT count(*)::text AS n FROM publisher_checkpoints WHERE position > 0");
      return Number(r.rows[0]?.n) > 0 ? true : undefined;
    }, 30_000, 'the publisher checkpoint');
    const sessions = await asSuperuser(cluster.superUrl, pki.ca.cert, `SELECT a.usename, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '${new URL(stack.dbUrl).pathname.slice(1)}'`);
    expect(sessions.rows.length).toBeGreaterThan(2);
    expect(sessions.rows.filter((r: { ssl: boolean }) => !r.ssl)).toEqual([]);
    // Each process's pool stays within COUNTERSIGN_PG_POOL_MAX (plus its own LISTEN and lock connections).
    expect(sessions.rows.length).toBeLessThanOrEqual(3 * 4 + 6);
  }, 180_000);

  it('a client that does not verify the server, or does not use TLS, gets no connection', async () => {
    const other = pki.issue('pg-impostor-trust', pki.otherCa, 'IP:127.0.0.1');
    const cases: Array<{ what: string; url: string; expect: RegExp }> = [
      { what: 'trusting another CA', url: tlsUrl('countersign_app', appPassword, 'countersign', verifyFull(pki.otherCa.cert)), expect: /certificate|verify/i },
      { what: 'trusting a certificate that is not a CA', url: tlsUrl('countersign_app', appPassword, 'countersign', verifyFull(other.cert)), expect: /certificate|verify/i },
      { what: 'a host name the certificate does not carry', url: `postgres://countersign_app:${appPassword}@localhost:${port}/countersign?${verifyFull(pki.ca.cert)}`, expect: /altnames|ECONNREFUSED|certificate/i },
      { what: 'sslmode=disable', url: tlsUrl('countersign_app', appPassword, 'countersign', 'sslmode=disable'), expect: /no pg_hba\.conf entry|encryption/i },
      { what: 'no sslmode at all', url: tlsUrl('countersign_app', appPassword, 'countersign', ''), expect: /no pg_hba\.conf entry|encryption/i },
    ];
    let through = 0;
    for (const c of cases) {
      const client = new pg.Client({ connectionString: c.url, connectionTimeoutMillis: 5_000 });
      const err = await client.connect().then(() => undefined, (e: unknown) => e as Error);
      if (!err || !c.expect.test(err.message)) {
        through += 1;
        console.log(c.what, err?.message ?? 'connected');
      }
      await client.end().catch(() => {});
    }
    console.log(`attack postgres-unverified-connections: ${cases.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  });
});
