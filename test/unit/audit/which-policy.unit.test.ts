import { describe, expect, it } from 'vitest';
import { syntheticLog } from '../../../services/audit/synthetic-runs.ts';
import { whichPolicy } from '../../../services/audit/which-policy.ts';
import { createInMemoryKeyring } from '../../../services/receipts/keyring.ts';

const keyring = createInMemoryKeyring();
const log = syntheticLog(keyring, { tenantId: 'acme', runs: 3, tag: 'which', now: new Date('2024-05-01T00:00:00Z') });
const activation = log[0]!;
const run = log.filter((e) => e.stream_id === log[1]!.stream_id);

describe('whichPolicy', () => {
  it('names the policy ids, versions, hashes and snapshot hash that decided a run', () => {
    const w = whichPolicy(run, [activation])!;
    expect(w.policies).toEqual([{ policy_id: 'example', version: 1, hash: (activation.data as { hash: string }).hash, activated_at: activation.recorded_at, activation_position: activation.position, signing_key_id: keyring.activeKeyId, activation_hash_matches: true }]);
    expect(w.snapshot_hash).toMatch(/^sha256:/);
    expect(w.decision).toBe('ALLOW');
    expect(w.warnings).toEqual([]);
  });

  it('warns when the activation is missing or the run chain is broken', () => {
    const tampered = run.map((e) => structuredClone(e));
    tampered[0]!.data['requested_by'] = 'mallory';
    const w = whichPolicy(tampered, [])!;
    expect(w.warnings).toHaveLength(2);
    expect(w.warnings[0]).toMatch(/run chain broken at position/);
    expect(w.warnings[1]).toMatch(/no activation in the log/);
  });

  it('answers null for a run without an evaluation', () => {
    expect(whichPolicy([], [activation])).toBeNull();
  });
});
