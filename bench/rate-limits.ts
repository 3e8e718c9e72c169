// Rate limits shared by every API process (permits leased from Postgres in blocks, migrations 0027 and 0029) vs
// the in-memory counters each process kept before: the latency a request pays for its count. Two Fastify apps, identical but for where
// registerRateLimits counts (Postgres, or this process's memory), each with one route that does nothing;
// requests through Fastify's inject, one at a time, alternating between the two in rounds, from rotating client
// addresses (anonymous requests count by address; a new address per request, then one address for all) under a
// limit none reaches. Reported: mean and percentiles per request for each, the ratio, and the added microseconds.
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/rate-limits.ts [requests per round] [rounds]
import { loadavg } from 'node:os';
import Fastify, { type FastifyInstance } from 'fastify';
import { createPool } from '../services/events/db.ts';
import { registerRateLimits } from '../services/api/rate-limits.ts';
import { createTestDatabase } from '../test/int/harness.ts';

const perRound = Number(process.argv[2] ?? 2000);
const rounds = Number(process.argv[3] ?? 5);
const database = await createTestDatabase();
const db = createPool(database.url, 10);

async function app(shared: boolean): Promise<FastifyInstance> {
  const a = Fastify();
  const limits = registerRateLimits(a, { max: 1_000_000, windowMs: 60_000, knowsKey: () => false, ...(shared ? { db } : {}) });
  a.setErrorHandler(async (err, req, reply) => reply.status(500).send(String(await limits.afterError(req, reply, err))));
  a.get('/x', async () => 'ok');
  await a.ready();
  return a;
}

const memory = await app(false);
const postgres = await app(true);
type Which = 'memory' | 'postgres';
let n = 0;
async function round(which: Which, count: number, oneClient: boolean, into: number[] | null): Promise<void> {
  const a = which === 'memory' ? memory : postgres;
  for (let i = 0; i < count; i++) {
    n += 1;
    const remoteAddress = oneClient ? `10.255.${which === 'memory' ? 1 : 2}.1` : `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    const t = performance.now();
    const res = await a.inject({ method: 'GET', url: '/x', remoteAddress });
    const us = (performance.now() - t) * 1000;
    if (res.statusCode !== 200) throw new Error(`${which}: ${res.statusCode} ${res.body}`);
    into?.push(us);
  }
}
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { mean: xs.reduce((a, b) => a + b, 0) / xs.length, p50: q(0.5), p99: q(0.99) };
};
const fmt = (x: ReturnType<typeof stats>) => `mean ${x.mean.toFixed(0)} µs, p50 ${x.p50.toFixed(0)} µs, p99 ${x.p99.toFixed(0)} µs`;
console.log(`machine            : load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} (2 cores shared with other sessions)`);
// A new client address per request: every request is a bucket's first, so each leases (one round trip). One
// client sending all of them: the permits leased in blocks are spent from memory.
for (const [label, oneClient] of [['a new client per request', false], ['one client', true]] as const) {
  const samples: Record<Which, number[]> = { memory: [], postgres: [] };
  await round('memory', 500, oneClient, null);
  await round('postgres', 500, oneClient, null);
  for (let r = 0; r < rounds; r++) {
    const order: Which[] = r % 2 === 0 ? ['memory', 'postgres'] : ['postgres', 'memory'];
    for (const which of order) await round(which, perRound, oneClient, samples[which]);
  }
  const m = stats(samples.memory);
  const p = stats(samples.postgres);
  console.log(`${label}:`);
  console.log(`  in-memory counters : ${samples.memory.length} requests, ${fmt(m)}`);
  console.log(`  shared (leased)    : ${samples.postgres.length} requests, ${fmt(p)}`);
  console.log(`  ratio              : ${(p.mean / m.mean).toFixed(2)}x mean, ${(p.p50 / m.p50).toFixed(2)}x p50 (shared / memory); added ${(p.mean - m.mean).toFixed(0)} µs per request (mean)`);
}
await memory.close();
await postgres.close();
await db.end();
await database.drop();
