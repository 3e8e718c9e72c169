import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAttestationSecret } from '../../services/decisions/attestation.ts';
import { loadKeyring, loadOrCreateKeyring, privateKeyPath } from '../../services/receipts/keyring.ts';
import { ROOT, freePort, stackEnv, startProcess } from './harness.ts';

/**
 * One keyring for the deployment: a process never creates a signing key or the attestation secret. The API and
 * the worker (which sign) refuse to start, with one line, without them; the publisher signs nothing and needs
 * none. `countersign keys rotate` rotates the shared directory.
 */
describe('one keyring for the deployment', () => {
  const dirs: string[] = [];
  const freshDir = () => {
    const d = mkdtempSync(path.join(tmpdir(), 'cs-keys-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const env = async (keysDir: string): Promise<Record<string, string>> => {
    const base = stackEnv();
    return {
      DATABASE_URL: base.DATABASE_URL, TEMPORAL_ADDRESS: base.TEMPORAL_ADDRESS, KAFKA_BROKERS: base.KAFKA_BROKERS, COUNTERSIGN_DATA_DIR: base.COUNTERSIGN_DATA_DIR,
      COUNTERSIGN_KEYS_DIR: keysDir, COUNTERSIGN_PORT: String(await freePort()), COUNTERSIGN_LOG_LEVEL: 'info', COUNTERSIGN_TASK_QUEUE: `countersign-keys-test-${path.basename(keysDir)}`,
      COUNTERSIGN_KAFKA_TOPIC: `countersign.test.keys.${path.basename(keysDir)}`, COUNTERSIGN_WORKFLOW_BUNDLE: process.env['COUNTERSIGN_WORKFLOW_BUNDLE'] ?? '',
    };
  };
  /** Starts a process expected to refuse: answers its output, and whether it became ready instead. */
  const refusal = async (name: string, entry: string, e: Record<string, string>, ready: RegExp): Promise<{ started: boolean; output: string }> => {
    try {
      const p = await startProcess(name, entry, e, ready, 60_000);
      await p.stop();
      return { started: true, output: p.output() };
    } catch (err) {
      return { started: false, output: err instanceof Error ? err.message : String(err) };
    }
  };

  it('the API and the worker refuse to start without the keyring or the secret, and create neither', async () => {
    const cases: Array<{ what: string; entry: string; ready: RegExp; prepare: (dir: string) => Promise<void> }> = [];
    for (const [name, entry, ready] of [['api', 'services/api/main.ts', /api listening/], ['worker', 'services/worker/main.ts', /worker started/]] as const) {
      cases.push({ what: `${name} without a keyring`, entry, ready, prepare: async () => {} });
      cases.push({ what: `${name} with a keyring but no attestation secret`, entry, ready, prepare: async (dir) => { await loadOrCreateKeyring(dir); } });
      cases.push({ what: `${name} with a secret but no keyring`, entry, ready, prepare: async (dir) => { loadAttestationSecret(dir); } });
    }
    let through = 0;
    for (const c of cases) {
      const dir = freshDir();
      await c.prepare(dir);
      const before = readdirSync(dir).sort();
      const r = await refusal(c.what, c.entry, await env(dir), c.ready);
      const created = readdirSync(dir).sort().filter((f) => !before.includes(f) && f !== 'keyring.lock');
      const lines = r.output.split('\n').filter((l) => l.includes('refusing to start'));
      if (r.started || created.length > 0 || lines.length !== 1) {
        through += 1;
        console.log(c.what, { started: r.started, created, output: r.output.slice(-1500) });
      }
    }
    console.log(`attack process-without-deployment-keys: ${cases.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 300_000);

  it('the publisher signs nothing: it starts with no keys and creates none', async () => {
    const dir = freshDir();
    const p = await startProcess('publisher', 'services/publisher/main.ts', await env(dir), /publisher starting/);
    await new Promise((r) => setTimeout(r, 1_500));
    await p.stop();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('countersign keys rotate: a new active key, the old one retired and still verifying', async () => {
    const dir = freshDir();
    const before = await loadOrCreateKeyring(dir);
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), 'keys', 'rotate', '--dir', dir, '--json'], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
    const result = JSON.parse(out) as { active_key_id: string; retired_key_ids: string[] };
    const after = await loadKeyring(dir);
    expect(result.active_key_id).toBe(after.activeKeyId);
    expect(after.activeKeyId).not.toBe(before.activeKeyId);
    expect(result.retired_key_ids).toEqual([before.activeKeyId]);
    // The retired key's private half is gone; its public half still verifies what it signed.
    expect(existsSync(privateKeyPath(dir, before.activeKeyId))).toBe(false);
    expect(after.publicKeys().keys.find((k) => k.kid === before.activeKeyId)?.status).toBe('retired');
  });
});
