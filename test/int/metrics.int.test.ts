import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { answerUpdate } from '../../workflows/decision-workflow.ts';
import { ROOT, addPrincipal, api, attestedAnswer, eventually, freePort, startProcess, startTestStack, type AppProcess, type TestStack } from './harness.ts';

// Every process's metrics move when their cause happens: decisions by outcome and latency (API and worker),
// approvals waiting and their age, publisher lag and throughput, audit replay progress, refused forged messages.

const RUN = Date.now().toString(36);
type Who = { id: string; key: string };

/** The sum of a metric's samples whose labels include `labels`, as a process serves them at `url`. */
async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) {
      sum += Number(m[3]);
      seen = true;
    }
  }
  return seen ? sum : 0;
}

describe('metrics from every process move with their causes', () => {
  let stack: TestStack;
  let worker: string, publisher: string;
  let bot: Who, fin: Who;
  let connection: Connection;
  let client: Client;

  beforeAll(async () => {
    const [w, p] = [await freePort(), await freePort()];
    worker = `http://127.0.0.1:${w}`;
    publisher = `http://127.0.0.1:${p}`;
    stack = await startTestStack({ COUNTERSIGN_WORKER_METRICS_PORT: String(w), COUNTERSIGN_PUBLISHER_METRICS_PORT: String(p), COUNTERSIGN_SLACK_SIGNING_SECRET: 'a'.repeat(32) });
    bot = await addPrincipal(stack, { name: 'metrics-bot', kind: 'agent', roles: ['agent'] });
    fin = await addPrincipal(stack, { name: 'fin-1', roles: ['approver'], groups: ['finance'] });
    connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
    client = new Client({ connection });
  }, 120_000);
  afterAll(async () => {
    await connection?.close();
    await stack?.stop();
  });

  const ask = (amount: number, key: string) => api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', {
    agent: { id: 'metrics-bot' }, action: { tool: 'payment_tool', operation: 'Refund', args: { order: key } }, context: { amount }, idempotency_key: `${key}-${RUN}`,
  });

  it('a policy decision: the API counts it and its latency by decision, the worker counts it final with its time from the request, the publisher sends its events', async () => {
    const before = {
      answered: await metric(stack.url, 'countersign_decisions_total', { decision: 'ALLOW' }),
      latency: await metric(stack.url, 'countersign_decision_request_duration_seconds_count', { decision: 'ALLOW' }),
      finalized: await metric(worker, 'countersign_decisions_finalized_total', { decision: 'ALLOW', via: 'policy' }),
      timeToFinal: await metric(worker, 'countersign_decision_time_to_final_seconds_count', { decision: 'ALLOW', via: 'policy' }),
      published: await metric(publisher, 'countersign_publisher_published_events_total'),
    };
    const res = await ask(120, 'allow');
    expect(res.body.decision).toBe('ALLOW');
    expect(await metric(stack.url, 'countersign_decisions_total', { decision: 'ALLOW' })).toBe(before.answered + 1);
    expect(await metric(stack.url, 'countersign_decision_request_duration_seconds_count', { decision: 'ALLOW' })).toBe(before.latency + 1);
    await eventually(async () => ((await metric(worker, 'countersign_decisions_finalized_total', { decision: 'ALLOW', via: 'policy' })) === before.finalized + 1 ? true : undefined), 30_000, 'the worker\'s finalized count');
    expect(await metric(worker, 'countersign_decision_time_to_final_seconds_count', { decision: 'ALLOW', via: 'policy' })).toBe(before.timeToFinal + 1);
    // DecisionRequested, PolicyEvaluated, DecisionFinalized, ReceiptIssued at least.
    await eventually(async () => ((await metric(publisher, 'countersign_publisher_published_events_total')) >= before.published + 4 ? true : undefined), 30_000, 'the publisher\'s throughput');
    await eventually(async () => ((await metric(publisher, 'countersign_publisher_lag_events')) === 0 ? true : undefined), 30_000, 'no lag once sent');
  }, 90_000);

  it('an approval waiting: counted and aged while it waits; answered, it leaves the gauge and counts final via approval', async () => {
    const before = await metric(stack.url, 'countersign_approvals_waiting');
    const res = await ask(650, 'approve');
    expect(res.body.decision).toBe('REQUIRE_APPROVAL');
    const id = res.body.decision_id as string;
    await eventually(async () => ((await metric(stack.url, 'countersign_approvals_waiting')) === before + 1 ? true : undefined), 30_000, 'the waiting approval');
    // The gauge is cached for a few seconds between scrapes: wait until the age it shows is past zero.
    await eventually(async () => ((await metric(stack.url, 'countersign_approvals_oldest_wait_seconds')) > 0 ? true : undefined), 30_000, 'its age');
    const viaApproval = await metric(worker, 'countersign_decisions_finalized_total', { decision: 'ALLOW', via: 'approval' });
    const answered = await api({ url: stack.url, key: fin.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
    expect(answered.status, JSON.stringify(answered.body)).toBe(200);
    await eventually(async () => ((await metric(stack.url, 'countersign_approvals_waiting')) === before ? true : undefined), 30_000, 'the gauge after the answer');
    await eventually(async () => ((await metric(worker, 'countersign_decisions_finalized_total', { decision: 'ALLOW', via: 'approval' })) === viaApproval + 1 ? true : undefined), 30_000, 'final via approval');
  }, 90_000);

  it('forged messages: an answer with a forged attestation sent straight to Temporal, and a Slack request with a bad signature, are counted', async () => {
    const res = await ask(700, 'forged');
    const id = res.body.decision_id as string;
    const snapshot = res.body.snapshot_hash as string;
    await eventually(async () => ((await stack.db.query(`SELECT count(*)::int AS n FROM events WHERE stream_id = $1 AND type = 'ApprovalRequested'`, [`run/${id}`])).rows[0].n > 0 ? true : undefined), 30_000, 'the open round');
    const before = await metric(worker, 'countersign_worker_refused_messages_total', { kind: 'answer', reason: 'bad_attestation' });
    const message = attestedAnswer(stack, { decisionId: id, approverId: fin.id, roles: ['approver'], groups: ['finance'], args: { order: `forged` }, snapshotHash: snapshot });
    const forged = { ...message, attestation: { ...message.attestation, mac: Buffer.alloc(32, 7).toString('base64url') } };
    const err = await client.workflow.getHandle(workflowIdFor('default', id)).executeUpdate(answerUpdate, { args: [forged] }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    await eventually(async () => ((await metric(worker, 'countersign_worker_refused_messages_total', { kind: 'answer', reason: 'bad_attestation' })) === before + 1 ? true : undefined), 30_000, 'the refused message');

    const slack = await metric(stack.url, 'countersign_channel_refusals_total', { channel: 'slack', reason: 'signature' });
    const r = await fetch(`${stack.url}/v1/slack/interactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': String(Math.floor(Date.now() / 1000)), 'x-slack-signature': `v0=${'0'.repeat(64)}` },
      body: 'payload=%7B%7D',
    });
    expect(r.status).toBe(401);
    expect(await metric(stack.url, 'countersign_channel_refusals_total', { channel: 'slack', reason: 'signature' })).toBe(slack + 1);
  }, 90_000);

  it('an audit replay: its events counted (events/s), the replay counted done with its result', async () => {
    const [events, done] = [await metric(stack.url, 'countersign_audit_replay_events_total'), await metric(stack.url, 'countersign_audit_replays_total', { result: 'ok' })];
    const res = await api(stack, 'POST', '/v1/audit/replays', {});
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(await metric(stack.url, 'countersign_audit_replay_events_total')).toBe(events + (res.body.events as number));
    expect(await metric(stack.url, 'countersign_audit_replays_total', { result: 'ok' })).toBe(done + 1);
    expect(await metric(stack.url, 'countersign_audit_replays_running')).toBe(0);
    expect(await metric(stack.url, 'countersign_audit_replay_last_events_per_second')).toBeGreaterThan(0);
  }, 90_000);

  it('the CLI\'s whole-log audit replay writes its progress and its end as Prometheus metrics (--metrics-file)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-replay-metrics-'));
    const file = path.join(dir, 'replay.prom');
    try {
      const r = await new Promise<{ code: number; stdout: string }>((resolve) => {
        execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), 'audit', 'replay', '--from', 'postgres', '--json', '--metrics-file', file], { cwd: ROOT, env: { ...process.env, ...stack.env } }, (err, stdout) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout });
        });
      });
      const report = JSON.parse(r.stdout) as { records: number; divergences: unknown[] };
      const text = readFileSync(file, 'utf8');
      const value = (name: string) => Number(new RegExp(`^${name}\\{source="postgres"\\} (\\S+)$`, 'm').exec(text)?.[1]);
      expect(value('countersign_audit_replay_done')).toBe(1);
      expect(value('countersign_audit_replay_records')).toBe(report.records);
      expect(value('countersign_audit_replay_records')).toBeGreaterThan(0);
      expect(value('countersign_audit_replay_events_per_second')).toBeGreaterThan(0);
      expect(value('countersign_audit_replay_divergences')).toBe(report.divergences.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('publisher lag: events committed while no publisher can reach Kafka are the lag, and it drains when one can', async () => {
    await stack.publisher.stop();
    const res = await ask(90, 'lag');
    expect(res.body.decision).toBe('ALLOW');
    // A publisher that cannot reach Kafka still reports the lag from Postgres.
    const port = await freePort();
    const stranded: AppProcess = await startProcess('publisher', 'services/publisher/main.ts', { ...stack.env, KAFKA_BROKERS: `127.0.0.1:${await freePort()}`, COUNTERSIGN_PUBLISHER_METRICS_PORT: String(port), COUNTERSIGN_LOG_LEVEL: 'info' }, /publisher starting/);
    try {
      await eventually(async () => ((await metric(`http://127.0.0.1:${port}`, 'countersign_publisher_lag_events')) >= 4 ? true : undefined), 30_000, 'the lag');
    } finally {
      await stranded.stop();
    }
    stack.publisher = await startProcess('publisher', 'services/publisher/main.ts', { ...stack.env, COUNTERSIGN_PUBLISHER_METRICS_PORT: new URL(publisher).port, COUNTERSIGN_LOG_LEVEL: 'info' }, /publisher starting/);
    await eventually(async () => ((await metric(publisher, 'countersign_publisher_lag_events')) === 0 ? true : undefined), 60_000, 'the lag drained');
  }, 120_000);
});
