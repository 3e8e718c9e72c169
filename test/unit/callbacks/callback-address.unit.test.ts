import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDeliverCallback } from '../../../activities/deliver-callback.ts';
import { addressRefusal, canonicalAddress } from '../../../services/callbacks/callback-address.ts';
import { checkCallbackUrl, type Resolver } from '../../../services/callbacks/callback-target.ts';
import { createInMemoryKeyring } from '../../../services/receipts/keyring.ts';
import type { DecisionResult } from '../../../schemas/decision.ts';

/**
 * The callback SSRF guard: every spelling of an address we must not call, decided without connecting
 * anywhere; and the connect path, with loopback listeners and injected resolvers only (nothing here sends a
 * packet beyond this machine's loopback).
 */

// A public address for the decision function only: nothing connects to it.
const PUBLIC = '93.184.216.34';
const fixed = (...answers: string[][]): Resolver & { calls: number } => {
  const r = Object.assign(async () => {
    const answer = answers[Math.min(r.calls, answers.length - 1)]!;
    r.calls++;
    return answer.map((address) => ({ address }));
  }, { calls: 0 });
  return r;
};

const REFUSED_URLS: Array<[string, RegExp]> = [
  ['http://[::ffff:127.0.0.1]:5433/', /loopback/],
  ['http://[::ffff:7f00:1]/', /loopback/],
  ['http://[::ffff:a9fe:a9fe]/latest/meta-data', /link-local/],
  ['http://[::ffff:10.0.0.1]/', /private/],
  ['http://[::127.0.0.1]/', /IPv4-compatible/],
  ['http://[::a9fe:a9fe]/', /IPv4-compatible/],
  ['http://[64:ff9b::127.0.0.1]/', /loopback/],
  ['http://[64:ff9b::a9fe:a9fe]/', /link-local/],
  ['http://[64:ff9b::10.1.2.3]/', /private/],
  ['http://[64:ff9b:1::7f00:1]/', /local-use NAT64/],
  ['http://[::ffff:0:7f00:1]/', /SIIT/],
  ['http://[2002:7f00:1::]/', /6to4/],
  ['http://[2001:0:7f00:1::]/', /Teredo/],
  ['http://0177.0.0.1/', /loopback/],
  ['http://0x7f000001/', /loopback/],
  ['http://0x7f.0.0.1/', /loopback/],
  ['http://2130706433/', /loopback/],
  ['http://127.1/', /loopback/],
  ['http://017700000001/', /loopback/],
  ['http://127.0.0.1:5433/', /loopback/],
  ['http://0.0.0.0/', /unspecified/],
  ['http://0/', /unspecified/],
  ['http://[::]/', /unspecified/],
  ['http://[::1]/', /loopback/],
  ['http://169.254.169.254/latest/meta-data', /link-local/],
  ['http://[fe80::1]/', /link-local/],
  ['http://[febf::1]/', /link-local/],
  ['http://[fec0::1]/', /site-local/],
  ['http://[fc00::1]/', /unique-local/],
  ['http://[fd12:3456::1]/', /unique-local/],
  ['http://10.0.0.1/', /private/],
  ['http://172.16.0.1/', /private/],
  ['http://172.31.255.255/', /private/],
  ['http://192.168.0.1/', /private/],
  ['http://100.64.0.1/', /carrier-grade NAT/],
  ['http://100.127.255.254/', /carrier-grade NAT/],
  ['http://224.0.0.1/', /multicast/],
  ['http://239.255.255.250/', /multicast/],
  ['http://[ff02::1]/', /multicast/],
  ['http://255.255.255.255/', /broadcast/],
  ['http://240.0.0.1/', /reserved/],
  ['http://192.0.0.8/', /reserved/],
];

describe('callback address check', () => {
  it('refuses every spelling of a loopback, private, link-local, unique-local, CGNAT, multicast or unspecified address', async () => {
    let through = 0;
    for (const [url, why] of REFUSED_URLS) {
      const check = await checkCallbackUrl(url, { resolve: fixed([PUBLIC]) });
      if (check.ok) through++;
      expect({ url, reason: check.ok ? 'allowed' : check.reason }).toEqual({ url, reason: expect.stringMatching(why) });
    }
    console.log(`attack callback-address-forms: ${REFUSED_URLS.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  });

  it('judges addresses as resolvers give them, in every spelling, and allows public unicast (also through NAT64)', () => {
    for (const a of ['::ffff:127.0.0.1', '::ffff:7f00:1', '0177.0.0.1', '0x7f000001', '2130706433', '::ffff:169.254.169.254', 'fe80::1%eth0', 'not-an-ip']) {
      expect({ a, r: addressRefusal(a) }).toEqual({ a, r: expect.any(String) });
    }
    for (const a of [PUBLIC, '2606:4700::1111', `::ffff:${PUBLIC}`, '64:ff9b::5db8:d822']) expect({ a, r: addressRefusal(a) }).toEqual({ a, r: null });
    expect(canonicalAddress('::ffff:7f00:1')).toEqual({ address: '127.0.0.1', family: 4 });
    expect(canonicalAddress('0x7f000001')).toEqual({ address: '127.0.0.1', family: 4 });
    expect(canonicalAddress('2606:4700:0:0::1111')).toEqual({ address: '2606:4700::1111', family: 6 });
  });

  it('refuses names that resolve to a refused address: localhost through the system resolver, and any answer that includes one', async () => {
    const cases: Array<[string, Resolver | undefined]> = [
      ['http://localhost:5433/', undefined],
      ['http://hook.example/', fixed(['127.0.0.1'])],
      ['http://hook.example/', fixed(['::ffff:a9fe:a9fe'])],
      ['http://hook.example/', fixed([PUBLIC, '10.0.0.7'])],
      ['http://hook.example/', fixed(['2606:4700::1111', 'fd00::1'])],
      ['http://hook.example/', fixed(['0.0.0.0'])],
      ['http://hook.example/', fixed([])],
    ];
    let through = 0;
    for (const [url, resolve] of cases) {
      const check = await checkCallbackUrl(url, resolve ? { resolve } : {});
      if (check.ok) through++;
      expect(check.ok).toBe(false);
    }
    console.log(`attack callback-names-to-private: ${cases.length} attempts, ${through} got through`);
    expect(through).toBe(0);
    expect(await checkCallbackUrl('ftp://hook.example/', { resolve: fixed([PUBLIC]) })).toMatchObject({ ok: false });
    expect(await checkCallbackUrl('http://user:pw@hook.example/', { resolve: fixed([PUBLIC]) })).toMatchObject({ ok: false });
  });

  it('resolves a name once and pins the address it checked (DNS rebinding: public to the check, private afterwards)', async () => {
    const rebinding = fixed([PUBLIC], ['127.0.0.1']);
    const check = await checkCallbackUrl('https://hook.example/cb', { resolve: rebinding });
    expect(check).toMatchObject({ ok: true, target: { address: PUBLIC, family: 4 } });
    expect(rebinding.calls).toBe(1);
  });
});

describe('callback delivery connects only to the address it checked', () => {
  type Seen = { host: string | undefined; body: string };
  const listen = (address: string, handler?: (req: IncomingMessage, res: ServerResponse) => void) => new Promise<{ server: Server; port: number; seen: Seen[] }>((resolve) => {
    const seen: Seen[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => { body += d.toString(); });
      req.on('end', () => {
        seen.push({ host: req.headers.host, body });
        if (handler) handler(req, res);
        else res.writeHead(204).end();
      });
    });
    server.listen(0, address, () => resolve({ server, port: (server.address() as AddressInfo).port, seen }));
  });
  const keyring = async () => createInMemoryKeyring();
  const result = { decision_id: 'dec_x', decision: 'ALLOW', status: 'final', reason: 'ok', matched_rule: null, matched_rules: [], constraints: {}, snapshot_hash: 'sha256:x' } as unknown as DecisionResult;
  let servers: Server[] = [];
  beforeAll(() => { servers = []; });
  afterAll(async () => { await Promise.all(servers.map((s) => new Promise((r) => s.close(r)))); });

  it('refuses, at delivery, a loopback listener named by its IPv4-mapped, hex, decimal and octal spellings and by localhost: it is never reached', async () => {
    const l = await listen('127.0.0.1');
    servers.push(l.server);
    const deliver = makeDeliverCallback(keyring, false);
    const urls = [`http://[::ffff:127.0.0.1]:${l.port}/`, `http://[::ffff:7f00:1]:${l.port}/`, `http://0x7f000001:${l.port}/`, `http://2130706433:${l.port}/`, `http://0177.0.0.1:${l.port}/`, `http://localhost:${l.port}/`, `http://127.0.0.1:${l.port}/`];
    let through = 0;
    for (const url of urls) {
      const res = await deliver({ url, tenantId: 't', decisionId: 'dec_x', result }).then(() => 'delivered', (err: Error & { nonRetryable?: boolean }) => (err.nonRetryable ? 'refused' : `retry: ${err.message}`));
      if (res !== 'refused') through++;
      expect({ url, res }).toEqual({ url, res: 'refused' });
    }
    expect(l.seen).toHaveLength(0);
    console.log(`attack callback-delivery-loopback: ${urls.length} attempts, ${through + l.seen.length} got through`);
  });

  it('connects to the pinned address with the name in the Host header, even when the name resolves elsewhere afterwards', async () => {
    // 127.0.0.1 stands for the address the check passed, 127.0.0.2 for where a second resolution would go.
    const checked = await listen('127.0.0.1');
    servers.push(checked.server);
    // The same port on both, so only the address decides which listener is reached.
    const port = checked.port;
    const second = await new Promise<{ server: Server; seen: Seen[] }>((resolve, reject) => {
      const seen: Seen[] = [];
      const server = createServer((req, res) => { seen.push({ host: req.headers.host, body: '' }); res.writeHead(204).end(); });
      server.once('error', reject);
      server.listen(port, '127.0.0.2', () => resolve({ server, seen }));
    });
    servers.push(second.server);
    const rebinding = fixed(['127.0.0.1'], ['127.0.0.2']);
    const deliver = makeDeliverCallback(keyring, true, rebinding);
    expect(await deliver({ url: `http://hook.example:${port}/cb`, tenantId: 't', decisionId: 'dec_x', result })).toEqual({ status: 204 });
    expect(rebinding.calls).toBe(1);
    expect(checked.seen.map((s) => s.host)).toEqual([`hook.example:${port}`]);
    expect(JSON.parse(checked.seen[0]!.body)).toMatchObject({ event: 'decision.final', decision: { decision_id: 'dec_x' } });
    expect(second.seen).toHaveLength(0);
    console.log(`attack callback-rebinding: 1 attempts, ${second.seen.length} got through`);
  });

  it('does not follow a redirect, to a private address or anywhere', async () => {
    const target = await listen('127.0.0.2');
    const redirecting = await listen('127.0.0.1', (_req, res) => res.writeHead(307, { location: `http://127.0.0.2:${target.port}/` }).end());
    servers.push(target.server, redirecting.server);
    const deliver = makeDeliverCallback(keyring, true);
    const err = await deliver({ url: `http://127.0.0.1:${redirecting.port}/`, tenantId: 't', decisionId: 'dec_x', result }).then(() => null, (e: Error & { nonRetryable?: boolean }) => e);
    expect(err).toMatchObject({ nonRetryable: true, message: expect.stringMatching(/307: redirects are not followed/) });
    expect(redirecting.seen).toHaveLength(1);
    expect(target.seen).toHaveLength(0);
    console.log(`attack callback-redirect: 1 attempts, ${target.seen.length} got through`);
  });
});
