import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, withSystem, withTenant, type Db } from '../../services/events/db.ts';
import { appendToStream } from '../../services/events/append-to-stream.ts';
import { ensureBootstrap } from '../../services/identity/bootstrap.ts';
import { createTenant } from '../../services/identity/tenants.ts';
import { authenticate } from '../../services/identity/principals.ts';
import { createTestDatabase } from './harness.ts';
import path from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * Row-level security (migration 0002): the database itself keeps tenants apart, whatever a query forgets.
 */
describe('tenant isolation in the database', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: Db;
  let keyB: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createPool(database.url, 4);
    await ensureBootstrap(db, { tenantId: 'tenant-a', keyFile: path.join(tmpdir(), `cs-rls-${randomBytes(4).toString('hex')}`) });
    keyB = (await createTenant(db, { id: 'tenant-b', name: 'B', default_decision: 'DENY', settings: {} }, { principalId: 'prn_bootstrap_tenant-a', platformAdmin: true })).admin_api_key;
    for (const tenant of ['tenant-a', 'tenant-b']) {
      await appendToStream(db, {
        streamId: `agent/${tenant}/probe`, tenantId: tenant, expectedVersion: 0, recordedAt: new Date(),
        events: [{ type: 'PolicyActivated', eventId: `probe-${tenant}`, data: { policy_id: 'p', version: 1, scope: { level: 'tenant' }, document: {}, snapshot: {}, hash: `sha256:${'0'.repeat(64)}`, activated_by: 'test' } }],
      });
    }
  }, 60_000);
  afterAll(async () => {
    await db?.end();
    await database?.drop();
  });

  const TABLES = ['events', 'tenants', 'principals', 'api_keys'] as const;

  it('a query with no tenant set sees no rows of any tenant-scoped table', async () => {
    for (const table of TABLES) {
      const n = (await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`)).rows[0]!.n;
      expect({ table, n }).toEqual({ table, n: '0' });
    }
  });

  it("tenant A's scope reads only A's rows, even when the WHERE forgets the tenant", async () => {
    for (const table of TABLES) {
      const col = table === 'tenants' ? 'id' : 'tenant_id';
      const seen = await withTenant(db, 'tenant-a', (c) => c.query<{ t: string }>(`SELECT DISTINCT ${col} AS t FROM ${table}`));
      expect({ table, tenants: seen.rows.map((r) => r.t) }).toEqual({ table, tenants: ['tenant-a'] });
    }
    // The system scope, by contrast, sees both: it exists, and only named paths use it.
    const all = await withSystem(db, 'inspection', (c) => c.query<{ t: string }>('SELECT DISTINCT tenant_id AS t FROM principals ORDER BY 1'));
    expect(all.rows.map((r) => r.t)).toEqual(['tenant-a', 'tenant-b']);
  });

  it("tenant A's scope cannot write B's rows, nor change them", async () => {
    await expect(withTenant(db, 'tenant-a', (c) => c.query(`INSERT INTO principals (id, tenant_id, name, kind) VALUES ('prn_x', 'tenant-b', 'x', 'agent')`))).rejects.toThrow(/row-level security/);
    const updated = await withTenant(db, 'tenant-a', (c) => c.query(`UPDATE api_keys SET revoked_at = now() WHERE tenant_id = 'tenant-b'`));
    expect(updated.rowCount).toBe(0);
    expect(await authenticate(db, keyB, new Date())).not.toBeNull();
  });

  it('the tenant setting is transaction-local: it does not outlive its transaction on a pooled connection', async () => {
    const one = createPool(database.url, 1);
    try {
      await withTenant(one, 'tenant-a', (c) => c.query('SELECT 1'));
      const after = await one.query<{ n: string }>('SELECT count(*)::text AS n FROM principals');
      expect(after.rows[0]!.n).toBe('0');
    } finally {
      await one.end();
    }
  });

  it('the scope is set as a literal: a tenant id that tries to break out of its quotes is only a strange id', async () => {
    // The scope rides in the same round trip as BEGIN (a simple-protocol batch), escaped by pg.
    const hostile = "tenant-a', true); SELECT set_config('countersign.system', 'inspection', true); --\\'";
    const seen = await withTenant(db, hostile, async (c) => ({
      tenant: (await c.query<{ t: string }>(`SELECT current_setting('countersign.tenant_id') AS t`)).rows[0]!.t,
      system: (await c.query<{ s: string | null }>(`SELECT current_setting('countersign.system', true) AS s`)).rows[0]!.s,
      rows: (await c.query<{ n: string }>('SELECT count(*)::text AS n FROM principals')).rows[0]!.n,
    }));
    expect(seen).toEqual({ tenant: hostile, system: expect.not.stringMatching(/inspection/), rows: '0' });
  });

  it('the table owner is bound by the policies too (FORCE)', async () => {
    const owner = new pg.Client({ connectionString: database.adminUrl });
    await owner.connect();
    try {
      expect((await owner.query<{ n: string }>('SELECT count(*)::text AS n FROM api_keys')).rows[0]!.n).toBe('0');
    } finally {
      await owner.end();
    }
  });
});
