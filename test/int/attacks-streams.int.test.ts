import { randomBytes } from 'node:crypto';
import kafkajs, { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_LIMIT_BYTES } from '../../services/api/json-bounds.ts';
import { appendToStream } from '../../services/events/append-to-stream.ts';
import { MAX_EVENT_RECORD_BYTES, TOPIC_MAX_MESSAGE_BYTES } from '../../services/events/event-size.ts';
import { agentStreamId } from '../../services/events/stream-ids.ts';
import { createKafkaSource } from '../../services/publisher/kafka.ts';
import { api, eventually, startTestStack, type TestStack } from './harness.ts';

/**
 * Attacks on the event log's shape: stream ids that two tenants could share, and events too large for the
 * topic to take (which would stop publication for every tenant). Each prints how many attempts it made and
 * how many got through.
 */
const { ConfigResourceTypes } = kafkajs;
let stack: TestStack;
const RUN = randomBytes(3).toString('hex');
type Who = { url: string; key: string };
const as = (key: string): Who => ({ url: stack.url, key });
const report = (name: string, attempts: number, through: string[]) => {
  console.log(`attack ${name}: ${attempts} attempts, ${through.length} got through`);
  expect(through).toEqual([]);
};

/** Tenants are created once per pair; ids carry the run so a rerun against one stack stays apart. */
async function tenant(id: string): Promise<{ admin: Who; bot: Who; botId: string }> {
  const t = await api(as(stack.bootstrapKey), 'POST', '/v1/tenants', { id, name: id });
  expect(t.status, JSON.stringify(t.body)).toBe(201);
  const admin = as(t.body.admin_api_key);
  const bot = await api(admin, 'POST', '/v1/principals', { name: `${id}-bot`, kind: 'agent', roles: ['agent'] });
  expect(bot.status).toBe(201);
  return { admin, bot: as(bot.body.api_key), botId: `${id}-bot` };
}

const policy = (id: string, name: string) => ({
  apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name }, scope: { level: 'tenant' },
  rules: [{ name: 'deny-shell', match: { tool: 'shell_exec' }, decision: 'DENY', reason: name }],
});

/** What a caller learns from an answer, less the id it named. */
const shape = (r: { status: number; body: any }) => ({ status: r.status, code: r.body?.code ?? null, title: r.body?.title ?? null });

async function topicRecords(): Promise<Array<{ key: string | null; value: any; bytes: number }>> {
  const out: Array<{ key: string | null; value: any; bytes: number }> = [];
  await createKafkaSource({ brokers: stack.env['KAFKA_BROKERS']!.split(','), topic: stack.topic }).readToEnd((r) => {
    out.push({ key: r.key, value: JSON.parse(r.value ?? 'null'), bytes: Buffer.byteLength(r.value ?? '') });
  });
  return out;
}


beforeAll(async () => {
  stack = await startTestStack();
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('stream ids cannot collide across tenants', () => {
  // Each pair: the first tenant's id + the second's id, joined by -, spell the same old stream id.
  const pairs = [
    { first: 'acme', firstPolicy: 'corp-refunds', second: 'acme-corp', secondPolicy: 'refunds', firstAgent: 'corp-bot', secondAgent: 'bot' },
    { first: 'x-y', firstPolicy: 'z', second: 'x', secondPolicy: 'y-z', firstAgent: 'q', secondAgent: 'y-q' },
    { first: 'a1', firstPolicy: 'b-c-d', second: 'a1-b-c', secondPolicy: 'd', firstAgent: 'b-c-e', secondAgent: 'e' },
  ].map((p, i) => ({ ...p, first: `r${RUN}${i}-${p.first}`, second: `r${RUN}${i}-${p.second}` })); // one prefix on both keeps the spelling

  it('a policy id of one tenant neither blocks nor reveals the same-spelled policy of another', async () => {
    const through: string[] = [];
    let attempts = 0;
    for (const p of pairs) {
      const [first, second] = [{ admin: await login(p.first) }, { admin: await login(p.second) }];
      const nonexistent = `never-${RUN}`;
      const before = shape(await api(second.admin, 'GET', `/v1/policies/${p.secondPolicy}`));
      const created = await api(first.admin, 'POST', '/v1/policies', policy(p.firstPolicy, `${p.first} ${p.firstPolicy}`));
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      // The second tenant learns nothing: its id answers exactly as an id nobody ever used.
      for (const [path, other] of [
        [`/v1/policies/${p.secondPolicy}`, `/v1/policies/${nonexistent}`],
        [`/v1/policies/${p.secondPolicy}/versions`, `/v1/policies/${nonexistent}/versions`],
        [`/v1/policies/${p.secondPolicy}/export`, `/v1/policies/${nonexistent}/export`],
      ] as const) {
        attempts += 1;
        const [mine, never] = [shape(await api(second.admin, 'GET', path)), shape(await api(second.admin, 'GET', other))];
        if (JSON.stringify(mine) !== JSON.stringify(never) || JSON.stringify(mine) !== JSON.stringify(path.endsWith(p.secondPolicy) ? before : mine)) through.push(`${p.second}: GET ${path} answered ${JSON.stringify(mine)}, a never-used id ${JSON.stringify(never)}`);
      }
      const list = await api(second.admin, 'GET', '/v1/policies');
      attempts += 1;
      if (list.body.items.some((x: { id: string }) => x.id === p.secondPolicy || x.id === p.firstPolicy)) through.push(`${p.second}: its list shows ${p.first}'s policy`);
      // ...and is not blocked from creating, validating and activating its own.
      attempts += 1;
      const mine = await api(second.admin, 'POST', '/v1/policies', policy(p.secondPolicy, `${p.second} ${p.secondPolicy}`));
      if (mine.status !== 201) through.push(`${p.second}: creating ${p.secondPolicy} answered ${mine.status} ${JSON.stringify(mine.body)}`);
      attempts += 1;
      const activated = await api(second.admin, 'POST', `/v1/policies/${p.secondPolicy}/activate`, {});
      if (activated.status !== 200 || activated.body.version !== 1) through.push(`${p.second}: activating ${p.secondPolicy} answered ${activated.status} ${JSON.stringify(activated.body)}`);
      attempts += 1;
      const theirs = await api(first.admin, 'POST', `/v1/policies/${p.firstPolicy}/activate`, {});
      if (theirs.status !== 200 || theirs.body.version !== 1) through.push(`${p.first}: activating ${p.firstPolicy} answered ${theirs.status} ${JSON.stringify(theirs.body)}`);
      // Each reads its own document only.
      attempts += 1;
      const [a, b] = [await api(first.admin, 'GET', `/v1/policies/${p.firstPolicy}`), await api(second.admin, 'GET', `/v1/policies/${p.secondPolicy}`)];
      const nameOf = (r: { body: any }) => JSON.stringify(r.body).includes(`${p.first} ${p.firstPolicy}`) ? 'first' : JSON.stringify(r.body).includes(`${p.second} ${p.secondPolicy}`) ? 'second' : 'none';
      if (nameOf(a) !== 'first' || nameOf(b) !== 'second') through.push(`${p.first}/${p.second}: documents read back as ${nameOf(a)}/${nameOf(b)}`);
    }
    // The streams are apart in the log, each holding one tenant's events.
    const streams = await stack.db.query<{ stream_id: string; tenants: string[] }>(`SELECT stream_id, array_agg(DISTINCT tenant_id) AS tenants FROM events WHERE stream_id LIKE 'policy/r${RUN}%' GROUP BY stream_id`);
    attempts += 1;
    if (streams.rows.length !== 2 * pairs.length || streams.rows.some((r) => r.tenants.length !== 1 || !r.stream_id.startsWith(`policy/${r.tenants[0]}/`))) through.push(`policy streams: ${JSON.stringify(streams.rows)}`);
    report('policy stream ids across tenants', attempts, through);
  }, 120_000);

  it('an agent id of one tenant neither blocks nor reveals the same-spelled agent of another', async () => {
    const through: string[] = [];
    let attempts = 0;
    for (const p of pairs) {
      const first = { admin: await login(p.first) };
      const second = { admin: await login(p.second) };
      // Each tenant binds its own policy (ids that never collided), so only the agent ids are in play.
      const own = `own-${RUN}`;
      for (const admin of [first.admin, second.admin]) expect((await api(admin, 'POST', '/v1/policies', policy(own, own))).status).toBe(201);
      const never = shape(await api(second.admin, 'GET', `/v1/agents/never-${RUN}/binding`));
      const bound = await api(first.admin, 'POST', `/v1/agents/${p.firstAgent}/binding`, { policy_id: own });
      expect(bound.status, JSON.stringify(bound.body)).toBe(200);
      const forced = await api(first.admin, 'POST', `/v1/agents/${p.firstAgent}/manifest?force=true`, { agent: { id: p.firstAgent }, tools: ['shell_exec'] });
      expect(forced.status, JSON.stringify(forced.body)).toBe(200);
      attempts += 1;
      const seen = await api(second.admin, 'GET', `/v1/agents/${p.secondAgent}/binding`);
      if (JSON.stringify(shape(seen)) !== JSON.stringify(never) || seen.body.policy_id !== null) through.push(`${p.second}: binding of ${p.secondAgent} shows ${JSON.stringify(seen.body)}`);
      attempts += 1;
      const mine = await api(second.admin, 'POST', `/v1/agents/${p.secondAgent}/binding`, { policy_id: own });
      if (mine.status !== 200 || mine.body.unchanged !== false) through.push(`${p.second}: binding ${p.secondAgent} answered ${mine.status} ${JSON.stringify(mine.body)}`);
      attempts += 1;
      const unbound = await api(second.admin, 'DELETE', `/v1/agents/${p.secondAgent}/binding`);
      if (unbound.status !== 200) through.push(`${p.second}: unbinding ${p.secondAgent} answered ${unbound.status} ${JSON.stringify(unbound.body)}`);
      attempts += 1;
      const theirs = await api(first.admin, 'GET', `/v1/agents/${p.firstAgent}/binding`);
      if (theirs.body.policy_id !== own) through.push(`${p.first}: binding of ${p.firstAgent} is now ${JSON.stringify(theirs.body)}`);
      attempts += 1;
      const rows = await stack.db.query<{ tenant_id: string }>('SELECT DISTINCT tenant_id FROM events WHERE stream_id = $1', [agentStreamId(p.second, p.secondAgent)]);
      if (rows.rows.map((r) => r.tenant_id).join() !== p.second) through.push(`${agentStreamId(p.second, p.secondAgent)} holds events of ${rows.rows.map((r) => r.tenant_id).join()}`);
    }
    report('agent stream ids across tenants', attempts, through);
  }, 120_000);

  it('tool catalogs and runs of two same-prefixed tenants stay apart', async () => {
    const through: string[] = [];
    let attempts = 0;
    for (const p of pairs) {
      const first = await login(p.first);
      const second = await login(p.second);
      for (const [who, admin] of [[p.first, first], [p.second, second]] as const) {
        attempts += 1;
        const reg = await api(admin, 'POST', '/v1/tools/catalog', { format: 'mcp', source: 'corp-tools', document: { tools: [{ name: `${who}_tool`, annotations: { destructiveHint: true } }] } });
        if (reg.status !== 201 || reg.body.version !== 1) through.push(`${who}: catalog registration answered ${reg.status} ${JSON.stringify(reg.body)}`);
      }
      for (const [who, admin, other] of [[p.first, first, p.second], [p.second, second, p.first]] as const) {
        attempts += 1;
        const cat = await api(admin, 'GET', '/v1/tools/catalog');
        const tools = JSON.stringify(cat.body.entries);
        if (!tools.includes(`${who}_tool`) || tools.includes(`${other}_tool`)) through.push(`${who}: catalog shows ${tools}`);
      }
    }
    report('catalog stream ids across tenants', attempts, through);
  }, 120_000);

  it('a run cannot be read or shadowed through a same-spelled idempotency key of another tenant', async () => {
    const through: string[] = [];
    let attempts = 0;
    for (const p of pairs) {
      const keys = { first: `${p.firstPolicy}-k`, second: `k` };
      const firstBot = await botOf(p.first);
      const secondBot = await botOf(p.second);
      const ask = (bot: { key: Who; id: string }, key: string) => api(bot.key, 'POST', '/v1/decisions', { agent: { id: bot.id }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 1 }, idempotency_key: key });
      const a = await ask(firstBot, keys.first);
      const b = await ask(secondBot, keys.second);
      attempts += 1;
      if (a.status !== 200 || b.status !== 200 || a.body.decision_id === b.body.decision_id) through.push(`${p.first}/${p.second}: decisions ${JSON.stringify([a.body, b.body])}`);
      attempts += 1;
      const cross = await api(secondBot.key, 'GET', `/v1/decisions/${a.body.decision_id}`);
      if (cross.status !== 404) through.push(`${p.second} read ${p.first}'s run: ${cross.status}`);
    }
    report('run stream ids across tenants', attempts, through);
  }, 120_000);
});

const admins = new Map<string, Who>();
const bots = new Map<string, { key: Who; id: string }>();
/** The admin (and agent) of a tenant made by the first test; made here if that test was skipped. */
async function login(id: string): Promise<Who> {
  if (!admins.has(id)) {
    const t = await tenant(id);
    admins.set(id, t.admin);
    bots.set(id, { key: t.bot, id: t.botId });
  }
  return admins.get(id)!;
}
async function botOf(id: string): Promise<{ key: Who; id: string }> {
  await login(id);
  return bots.get(id)!;
}

describe('oversized events never block the publisher', () => {
  /** A decision request of exactly `bytes` bytes (its args padded), as an agent would send it. */
  const bodyOf = (agent: string, bytes: number, extra: Record<string, unknown> = {}) => {
    const shell = (pad: string) => JSON.stringify({ agent: { id: agent }, action: { tool: 'payment_tool', operation: 'Refund', args: { pad } }, context: { amount: 1 }, ...extra });
    const body = shell('x'.repeat(bytes - Buffer.byteLength(shell(''))));
    expect(Buffer.byteLength(body)).toBe(bytes);
    return body;
  };
  const send = (who: Who, body: string | ReadableStream<Uint8Array>, headers: Record<string, string> = {}) =>
    fetch(`${stack.url}/v1/decisions`, { method: 'POST', headers: { authorization: `Bearer ${who.key}`, 'content-type': 'application/json', ...headers }, body, duplex: 'half' });
  const onKafka = (ids: string[]) => eventually(async () => {
    const records = await topicRecords();
    const found = ids.map((id) => records.find((r) => r.value?.type === 'DecisionRequested' && r.value.data?.decision_id === id));
    return found.every((f) => f !== undefined) ? found.map((f) => f) : undefined;
  }, 90_000, `DecisionRequested of ${ids.join(', ')} on the topic`);

  it('the largest accepted body, and one whose numbers print longer, are published; other tenants\' events follow', async () => {
    const big = await botOf(`r${RUN}-big`);
    const small = await botOf(`r${RUN}-small`);
    const through: string[] = [];
    const largest = await send(big.key, bodyOf(big.id, BODY_LIMIT_BYTES, { idempotency_key: `largest-${RUN}` }));
    const largestBody = await largest.json() as { decision_id: string };
    expect(largest.status, JSON.stringify(largestBody)).toBe(200);
    // `1e20` is 4 bytes sent and 21 digits recorded: the most a body grows between the wire and the log.
    const numbers = Array.from({ length: 49_000 }, () => '1e20').join(',');
    const shell = (pad: string) => `{"agent":{"id":"${big.id}"},"action":{"tool":"payment_tool","operation":"Refund","args":{"pad":"${pad}"}},"context":{"amount":1,"n":[${numbers}]},"idempotency_key":"numbers-${RUN}"}`;
    const padded = shell('x'.repeat(BODY_LIMIT_BYTES - Buffer.byteLength(shell(''))));
    expect(Buffer.byteLength(padded)).toBe(BODY_LIMIT_BYTES);
    const amplified = await send(big.key, padded);
    const amplifiedBody = await amplified.json() as { decision_id: string };
    expect(amplified.status, JSON.stringify(amplifiedBody)).toBe(200);
    const after = await api(small.key, 'POST', '/v1/decisions', { agent: { id: small.id }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 1 } });
    expect(after.status).toBe(200);
    const [l, a, s] = await onKafka([largestBody.decision_id, amplifiedBody.decision_id, after.body.decision_id]);
    if (l!.bytes <= BODY_LIMIT_BYTES) through.push(`the largest body's event is only ${l!.bytes} bytes`);
    if (a!.bytes <= 1.5 * BODY_LIMIT_BYTES) through.push(`the amplified body's event is only ${a!.bytes} bytes`);
    if (!s) through.push('a later event of another tenant was not published');
    report('largest bodies published (topic max.message.bytes set explicitly)', 3, through);
  }, 150_000);

  it('a body over the bound is refused with 413 and writes nothing, however it is sent', async () => {
    const over = await botOf(`r${RUN}-over`);
    const tenantId = `r${RUN}-over`;
    const count = async () => Number((await stack.db.query<{ n: string }>('SELECT count(*)::text AS n FROM events WHERE tenant_id = $1', [tenantId])).rows[0]!.n);
    const before = await count();
    const through: string[] = [];
    const chunked = (body: string) => new ReadableStream<Uint8Array>({
      start(c) {
        const bytes = Buffer.from(body);
        for (let i = 0; i < bytes.length; i += 65_536) c.enqueue(bytes.subarray(i, i + 65_536));
        c.close();
      },
    });
    const attempts: Array<[string, () => Promise<Response>]> = [
      ['one byte over', () => send(over.key, bodyOf(over.id, BODY_LIMIT_BYTES + 1))],
      ['a megabyte over', () => send(over.key, bodyOf(over.id, 2 * BODY_LIMIT_BYTES))],
      ['one byte over, chunked (no content-length)', () => send(over.key, chunked(bodyOf(over.id, BODY_LIMIT_BYTES + 1)))],
      ['as large as the topic takes, chunked', () => send(over.key, chunked(bodyOf(over.id, TOPIC_MAX_MESSAGE_BYTES)))],
    ];
    for (const [name, attempt] of attempts) {
      // Refused means a 413, or (for a long chunked body) the API closing the connection after answering 413
      // while the client is still sending, so that the client never reads the answer.
      const res = await attempt().catch((err: unknown) => err as Error);
      if (res instanceof Error) {
        if (!/fetch failed/.test(res.message)) through.push(`${name}: ${res.message}`);
        continue;
      }
      const body = await res.json().catch(() => null) as { code?: string } | null;
      if (res.status !== 413 || body?.code !== 'payload_too_large') through.push(`${name}: ${res.status} ${JSON.stringify(body)}`);
    }
    if ((await count()) !== before) through.push(`events were written: ${before} -> ${await count()}`);
    report('bodies over the bound', attempts.length, through);
  }, 60_000);

  it('the write path refuses an event the topic could not take, and writes nothing', async () => {
    const tenantId = `r${RUN}-append`;
    const stream = agentStreamId(tenantId, 'huge');
    const through: string[] = [];
    const sizes = [MAX_EVENT_RECORD_BYTES, TOPIC_MAX_MESSAGE_BYTES, 3 * TOPIC_MAX_MESSAGE_BYTES];
    for (const size of sizes) {
      const err = await appendToStream(stack.db, {
        streamId: stream, tenantId, expectedVersion: 0, recordedAt: new Date(),
        events: [{ type: 'AgentManifestForced', eventId: `${stream}/forced/${size}`, data: { agent_id: 'huge', manifest: { tools: ['x'.repeat(size)] }, by: 'prn_test' } }],
      }).then(() => null, (e: unknown) => e as { code?: string });
      if (err?.code !== 'payload_too_large') through.push(`${size} bytes: ${JSON.stringify(err)}`);
    }
    const rows = await stack.db.query('SELECT 1 FROM events WHERE stream_id = $1', [stream]);
    if (rows.rowCount !== 0) through.push(`${rows.rowCount} events written`);
    report('oversized appends', sizes.length, through);
  });

  it('a topic whose limit was lowered by hand is put back by the publisher, and nothing is lost', async () => {
    const bot = await botOf(`r${RUN}-lowered`);
    const kafka = new Kafka({ clientId: 'attacks-streams', brokers: stack.env['KAFKA_BROKERS']!.split(','), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const limit = async () => (await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: stack.topic, configNames: ['max.message.bytes'] }] })).resources[0]!.configEntries[0]!.configValue;
    const through: string[] = [];
    try {
      expect(await limit()).toBe(String(TOPIC_MAX_MESSAGE_BYTES));
      await admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: stack.topic, configEntries: [{ name: 'retention.ms', value: '-1' }, { name: 'max.message.bytes', value: '1048588' }] }] });
      const res = await send(bot.key, bodyOf(bot.id, BODY_LIMIT_BYTES));
      const body = await res.json() as { decision_id: string };
      expect(res.status).toBe(200);
      const [record] = await onKafka([body.decision_id]);
      if (!record) through.push('the large event never reached the topic');
      if ((await limit()) !== String(TOPIC_MAX_MESSAGE_BYTES)) through.push(`the topic's limit is ${await limit()}`);
      await eventually(async () => (/too large/.test(stack.publisher.output()) ? true : undefined), 10_000, 'the publisher naming the refusal');
    } finally {
      await admin.disconnect();
    }
    report('topic limit lowered under the publisher', 1, through);
  }, 150_000);
});
