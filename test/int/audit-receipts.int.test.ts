import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PublicKeySet } from '../../schemas/receipt.ts';
import { rotateKeyring } from '../../services/receipts/keyring.ts';
import { verifyReceipt } from '../../services/receipts/verify.ts';
import { api, eventually, ROOT, startTestStack, type TestStack } from './harness.ts';

// Keys are unique per run: workflow ids derive from (tenant, key), and the Temporal server outlives test databases.
const RUN = randomBytes(4).toString('hex');
const refund = (amount: number, key: string) => ({ agent: { id: 'support-bot' }, action: { tool: 'payment_tool', operation: 'Refund', args: { order: key } }, context: { amount }, idempotency_key: `${key}-${RUN}` });

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), ...args], { cwd: ROOT, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Receipts over HTTP, key rotation, and the auditor's commands against a real run. */
describe('receipts, keys and rotation; audit replay, which-policy and verify from a clean stack', () => {
  let stack: TestStack;
  const dataDir = mkdtempSync(path.join(tmpdir(), 'countersign-receipts-'));
  const saved = process.env['COUNTERSIGN_DATA_DIR'];
  beforeAll(async () => {
    // A keyring of its own: rotating the shared development key would disturb everyone else.
    process.env['COUNTERSIGN_DATA_DIR'] = dataDir;
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.stop();
    process.env['COUNTERSIGN_DATA_DIR'] = saved;
    rmSync(dataDir, { recursive: true, force: true });
  });

  const receiptOf = (id: string) => eventually(async () => {
    const r = await api(stack, 'GET', `/v1/decisions/${id}/receipt`);
    return r.status === 200 ? r.body : undefined;
  }, 30_000, `the receipt of ${id}`);

  it('serves the signed receipt, verifiable with GET /v1/keys; rotation keeps the old one verifiable', async () => {
    const a = await api(stack, 'POST', '/v1/decisions', refund(50, 'receipt-a'));
    expect(a.status, JSON.stringify(a.body) + stack.api.output().slice(-1500)).toBe(200);
    const first = await receiptOf(a.body.decision_id);
    expect(first.receipt).toMatchObject({ decision_id: a.body.decision_id, decision: a.body.decision, snapshot_hash: a.body.snapshot_hash });
    const keys1 = (await fetch(`${stack.url}/v1/keys`).then((r) => r.json())) as PublicKeySet;
    expect(verifyReceipt(first, keys1)).toMatchObject({ ok: true, key_id: first.signature.key_id });

    await rotateKeyring(stack.env['COUNTERSIGN_KEYS_DIR']!);
    await stack.worker.stop();
    stack.worker = await stack.startWorker();
    const b = await api(stack, 'POST', '/v1/decisions', refund(60, 'receipt-b'));
    const second = await receiptOf(b.body.decision_id);
    expect(second.signature.key_id).not.toBe(first.signature.key_id);
    const keys2 = (await fetch(`${stack.url}/v1/keys`).then((r) => r.json())) as PublicKeySet;
    expect(verifyReceipt(second, keys2).ok).toBe(true);
    expect(verifyReceipt(first, keys2).ok).toBe(true); // the retired key still verifies
    expect(keys2.keys.find((k) => k.kid === first.signature.key_id)?.status).toBe('retired');
    expect(JSON.stringify(keys2)).not.toMatch(/"d"\s*:/); // public halves only

    // The CLI verifies both offline against the served keys.
    const file = path.join(dataDir, 'receipt.json');
    writeFileSync(file, JSON.stringify(first));
    const verified = await cli(['audit', 'verify', file, '--keys', `${stack.url}/v1/keys`], stack.env);
    expect(verified.code, verified.stderr).toBe(0);
  });

  it('answers 404 for an unknown run and 409 while a run has no receipt yet', async () => {
    const missing = await api(stack, 'GET', `/v1/decisions/dec_${'0'.repeat(32)}/receipt`);
    expect(missing.status).toBe(404);
    const pending = await api(stack, 'POST', '/v1/decisions', refund(900, 'receipt-pending'));
    expect(pending.body.status).toBe('pending_approval');
    await eventually(async () => ((await stack.db.query('SELECT 1 FROM events WHERE stream_id = $1', [`run/${pending.body.decision_id}`])).rowCount ? true : undefined));
    const res = await api(stack, 'GET', `/v1/decisions/${pending.body.decision_id}/receipt`);
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('conflict');
  });

  it('audit replay (both sources), audit which-policy: exit 0 and the right answers', async () => {
    const a = await api(stack, 'POST', '/v1/decisions', refund(70, 'receipt-c'));
    await receiptOf(a.body.decision_id);
    for (const from of ['postgres', 'kafka']) {
      const out = await eventually(async () => {
        const r = await cli(['audit', 'replay', '--from', from, '--json'], stack.env);
        const report = JSON.parse(r.stdout);
        return report.receipts.some((x: { receipt: { decision_id: string } }) => x.receipt.decision_id === a.body.decision_id) ? { r, report } : undefined;
      }, 60_000, `replay from ${from}`);
      expect(out.report.divergences, from).toEqual([]);
      expect(out.r.code).toBe(0);
      expect(out.report.re_evaluated).toBeGreaterThanOrEqual(3);
    }
    const which = await cli(['audit', 'which-policy', a.body.decision_id, '--json'], stack.env);
    expect(which.code, which.stderr).toBe(0);
    const answer = JSON.parse(which.stdout);
    expect(answer).toMatchObject({ decision_id: a.body.decision_id, snapshot_hash: a.body.snapshot_hash, policies: [{ policy_id: 'example', version: 1, activation_hash_matches: true }], warnings: [] });
    const unknown = await cli(['audit', 'which-policy', `dec_${'1'.repeat(32)}`], stack.env);
    expect(unknown.code).toBe(1);
  });
});
