import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foldTenantStream } from '../../services/audit/tenant-membership.ts';
import { readStream } from '../../services/events/read-events.ts';
import { bootstrapPrincipalId } from '../../services/identity/bootstrap.ts';
import { addPrincipal, api, startTestStack, type TestStack } from './harness.ts';

// Taking the platform flag from a platform admin: by platform admins only, recorded, effective at once, never
// the last enabled one, and safe when two admins revoke each other at the same moment. A stack of its own:
// the test revokes the bootstrap admin's flag.

const RUN = randomUUID().slice(0, 8);
let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
}, 180_000);
afterAll(async () => {
  await stack?.stop();
});

const as = (key: string) => ({ url: stack.url, key });
const report = (name: string, attempts: number, through: number) => console.log(`attack ${name}: ${attempts} attempts, ${through} got through`);
const flags = async () => (await stack.db.query<{ f: string }>("SELECT string_agg(tenant_id || '/' || id || '=' || platform_admin, ',' ORDER BY tenant_id, id) AS f FROM principals")).rows[0]!.f;
const tenantEvents = async () => Number((await stack.db.query<{ n: string }>("SELECT count(*)::text AS n FROM events WHERE stream_id LIKE 'tenant/%'")).rows[0]!.n);
const home = `ops-${RUN}`;
type Admin = { principal_id: string; api_key: string };
const mint = async (name: string): Promise<Admin> => {
  const made = await api(as(stack.bootstrapKey), 'POST', '/v1/platform/admins', { tenant_id: home, name });
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  return made.body as Admin;
};
const revoke = (key: string, tenant: string, principal: string) => api(as(key), 'DELETE', `/v1/platform/admins/${tenant}/${principal}`);

describe('platform admins lose the flag only to another platform admin', () => {
  let ada: Admin;
  let bob: Admin;

  it('a platform admin takes the flag from another: listed before, recorded, refused at once, and the member keeps its tenant roles', async () => {
    expect((await api(as(stack.bootstrapKey), 'POST', '/v1/tenants', { id: home, name: 'Platform ops' })).status).toBe(201);
    ada = await mint('Ada');
    bob = await mint('Bob');
    const listed = await api(as(ada.api_key), 'GET', '/v1/platform/admins');
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((i: { principal_id: string; tenant_id: string }) => `${i.tenant_id}/${i.principal_id}`)).toEqual([`default/${bootstrapPrincipalId('default')}`, `${home}/${ada.principal_id}`, `${home}/${bob.principal_id}`]);

    const r = await revoke(ada.api_key, home, bob.principal_id);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toEqual({ principal_id: bob.principal_id, tenant_id: home, platform_admin: false });
    // The very next request: no platform route, but still an admin of its own tenant.
    expect((await api(as(bob.api_key), 'GET', '/v1/tenants')).status).toBe(403);
    expect((await api(as(bob.api_key), 'GET', '/v1/me')).body).toMatchObject({ platform_admin: false, roles: ['admin', 'author', 'auditor'] });
    expect((await api(as(bob.api_key), 'GET', '/v1/principals')).status).toBe(200);
    expect((await api(as(ada.api_key), 'GET', '/v1/platform/admins')).body.items.map((i: { principal_id: string }) => i.principal_id)).not.toContain(bob.principal_id);

    // Recorded on the home tenant's stream, and the auditor's fold of that stream agrees.
    const stream = await readStream(stack.db, `tenant/${home}`);
    expect(stream.at(-1)).toMatchObject({ type: 'PlatformAdminRevoked', data: { principal_id: bob.principal_id, by: ada.principal_id } });
    const folded = foldTenantStream(home, stream);
    expect(folded.problems).toEqual([]);
    expect(folded.membership.members.find((m) => m.principal_id === bob.principal_id)?.platform_admin).toBe(false);
    expect(folded.membership.members.find((m) => m.principal_id === ada.principal_id)?.platform_admin).toBe(true);
  });

  it('attack platform-admin-revoking: nobody else takes the flag, no path names another member, and a replay changes nothing', async () => {
    const tenantAdmin = (await api(as(stack.bootstrapKey), 'POST', '/v1/tenants', { id: `acme-${RUN}`, name: 'acme' })).body.admin_api_key as string;
    const approver = await addPrincipal(stack, { name: 'Ann', roles: ['approver'], groups: ['finance'] });
    const agent = await addPrincipal(stack, { name: 'bot', kind: 'agent', roles: ['agent'] });
    const before = [await flags(), await tenantEvents()];
    const target = `${home}/${ada.principal_id}`;
    const attempts: Array<[string | null, string, number]> = [
      [tenantAdmin, target, 403], // an admin of a tenant, not of the platform
      [approver.key, target, 403],
      [agent.key, target, 403],
      [bob.api_key, target, 403], // revoked a moment ago
      [null, target, 401],
      ['cs_notakey_notasecret', target, 401],
      [`${ada.api_key}x`, target, 401], // forged: a platform admin's key, altered
      [stack.bootstrapKey, `${home}/${bob.principal_id}`, 404], // replayed: already revoked
      [stack.bootstrapKey, `default/${ada.principal_id}`, 404], // the right principal in the wrong tenant
      [stack.bootstrapKey, `${home}/${approver.id}`, 404], // a member that is no platform admin
      [stack.bootstrapKey, `${home}/prn_${'x'.repeat(81)}`, 400], // oversized id
      [stack.bootstrapKey, `..%2Fdefault/${ada.principal_id}`, 400],
      [stack.bootstrapKey, `${home}/key_0123456789abcdef`, 400], // not a principal id
      [stack.bootstrapKey, `platform/${ada.principal_id}`, 400], // a reserved tenant id
    ];
    let through = 0;
    for (const [key, where, expected] of attempts) {
      const url = `${stack.url}/v1/platform/admins/${where}`;
      const res = key === null
        ? await fetch(url, { method: 'DELETE' }).then((r) => ({ status: r.status, body: null }))
        : await api(as(key), 'DELETE', `/v1/platform/admins/${where}`);
      if (res.status !== expected) {
        through += 1;
        console.log(`got through: ${where} ${expected} expected, ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      }
    }
    expect([await flags(), await tenantEvents()]).toEqual(before);
    report('platform-admin-revoking', attempts.length, through);
    expect(through).toBe(0);
  });

  it('never the last enabled one; two admins revoking each other at once: exactly one wins', async () => {
    const cy = await mint('Cy');
    const di = await mint('Di');
    // Leave Cy and Di: Ada and the bootstrap admin go (the bootstrap admin's last act).
    expect((await revoke(stack.bootstrapKey, home, ada.principal_id)).status).toBe(200);
    expect((await revoke(stack.bootstrapKey, 'default', bootstrapPrincipalId('default'))).status).toBe(200);
    expect((await api(as(stack.bootstrapKey), 'GET', '/v1/tenants')).status).toBe(403);

    const before = await tenantEvents();
    const [a, b] = await Promise.all([revoke(cy.api_key, home, di.principal_id), revoke(di.api_key, home, cy.principal_id)]);
    expect([a.status, b.status].sort(), JSON.stringify([a.body, b.body])).toEqual([200, 403]);
    expect(await tenantEvents()).toBe(before + 1);
    const left = a.status === 200 ? cy : di;
    const listed = await api(as(left.api_key), 'GET', '/v1/platform/admins');
    expect(listed.body.items.map((i: { principal_id: string }) => i.principal_id)).toEqual([left.principal_id]);

    // The last one cannot take its own flag.
    const last = await revoke(left.api_key, home, left.principal_id);
    expect(last.status).toBe(409);
    expect(last.body.detail).toMatch(/last enabled platform admin/);
    expect(await tenantEvents()).toBe(before + 1);
  });
});
