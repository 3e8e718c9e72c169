import { describe, expect, it } from 'vitest';
import type { EventData, StoredEvent } from '../../../schemas/events.ts';
import { Replay } from '../../../services/audit/replay.ts';
import { syntheticLog } from '../../../services/audit/synthetic-runs.ts';
import { eventHashMatches } from '../../../services/events/hash-chain.ts';
import {
  agentStreamId, catalogStreamId, currentStreamId, legacyStreamId, parseStreamId, policyStreamId, runStreamId, StreamIdError, tenantStreamId,
} from '../../../services/events/stream-ids.ts';
import { asSigned, buildReceipt } from '../../../services/receipts/build-receipt.ts';
import { createInMemoryKeyring } from '../../../services/receipts/keyring.ts';
import { rechain } from '../audit/tamper.ts';
import { writtenBeforeSlashIds } from './legacy-log.ts';

const keyring = createInMemoryKeyring(new Date('2024-01-01T00:00:00Z'));
const NOW = new Date('2024-05-01T12:00:00Z');
const LATER = new Date(NOW.getTime() + 3_600_000);

function replay(log: StoredEvent[]) {
  const r = new Replay({ keys: keyring.publicKeys(), now: LATER, parallel: false });
  for (const e of log) r.add({ value: JSON.stringify(e), where: `test:${e.position}` });
  return r.finish();
}

describe('stream ids', () => {
  it('compose with / so that no two tenants share a stream', () => {
    expect(policyStreamId('acme', 'corp-refunds')).toBe('policy/acme/corp-refunds');
    expect(policyStreamId('acme-corp', 'refunds')).toBe('policy/acme-corp/refunds');
    expect(agentStreamId('acme', 'corp-bot')).not.toBe(agentStreamId('acme-corp', 'bot'));
    expect([runStreamId('dec_1'), catalogStreamId('acme'), tenantStreamId('acme')]).toEqual(['run/dec_1', 'catalog/acme', 'tenant/acme']);
  });

  it('parse back into their parts, and nothing else parses', () => {
    expect(parseStreamId('policy/acme-corp/refunds')).toEqual({ kind: 'policy', tenantId: 'acme-corp', policyId: 'refunds' });
    expect(parseStreamId('agent/acme/corp-bot')).toEqual({ kind: 'agent', tenantId: 'acme', agentId: 'corp-bot' });
    expect(parseStreamId('run/dec_1')).toEqual({ kind: 'run', decisionId: 'dec_1' });
    expect(parseStreamId('catalog/acme')).toEqual({ kind: 'catalog', tenantId: 'acme' });
    expect(parseStreamId('tenant/acme')).toEqual({ kind: 'tenant', tenantId: 'acme' });
    for (const bad of ['policy/acme', 'policy/acme/a/b', 'policy//x', 'run/', 'catalog/a/b', 'unknown/x', 'policy-acme-refunds', '__proto__/x', '']) {
      expect(parseStreamId(bad), bad).toBeNull();
    }
  });

  it('refuse a part that contains the separator, or an empty one', () => {
    expect(() => policyStreamId('acme', 'a/b')).toThrow(StreamIdError);
    expect(() => agentStreamId('acme/x', 'bot')).toThrow(StreamIdError);
    expect(() => runStreamId('')).toThrow(StreamIdError);
  });

  it('map the - ids of an unmigrated copy with the event\'s own tenant, as migration 0014 does', () => {
    expect(currentStreamId('policy-acme-corp-refunds', 'acme')).toBe('policy/acme/corp-refunds');
    expect(currentStreamId('policy-acme-corp-refunds', 'acme-corp')).toBe('policy/acme-corp/refunds');
    expect(currentStreamId('agent-acme-corp-bot', 'acme-corp')).toBe('agent/acme-corp/bot');
    expect(currentStreamId('catalog-acme', 'acme')).toBe('catalog/acme');
    expect(currentStreamId('run-dec_1', 'acme')).toBe('run/dec_1');
    expect(currentStreamId('policy/acme/x', 'acme')).toBe('policy/acme/x');
    expect(currentStreamId('policy-other-x', 'acme')).toBe('policy-other-x');
    expect(legacyStreamId('policy/acme/corp-refunds')).toBe('policy-acme-corp-refunds');
    expect(legacyStreamId('tenant/acme')).toBeNull();
  });
});

describe('a log written before / ids', () => {
  const current = syntheticLog(keyring, { tenantId: 'acme-corp', runs: 6, tag: 'ids', now: NOW });
  const old = writtenBeforeSlashIds(current, keyring);

  it('is what the current log would have been (the fixture is faithful)', () => {
    expect(old.every((e) => !e.stream_id.includes('/'))).toBe(true);
    expect(old.map((e) => e.hash)).not.toEqual(current.map((e) => e.hash));
    expect(replay(current).divergences).toEqual([]);
  });

  it('replays clean from a copy that kept the old ids (a Kafka topic published before migration 0014)', () => {
    const r = replay(old);
    expect(r.divergences).toEqual([]);
    expect(r.runs).toBe(6);
    expect(r.receipts.map((x) => x.receipt.stream_id).every((s) => s.startsWith('run-'))).toBe(true);
    expect(Object.keys(r.policy_chains)).toEqual(['acme-corp/example']);
  });

  it('replays clean after migration 0014 renamed its rows and kept their hashes (Postgres)', () => {
    const renamed = old.map((e) => ({ ...e, stream_id: currentStreamId(e.stream_id, e.tenant_id) }));
    expect(renamed.every((e) => eventHashMatches(e))).toBe(true);
    const r = replay(renamed);
    expect(r.divergences).toEqual([]);
    expect(r.receipts).toHaveLength(replay(current).receipts.length);
    // The rebuilt receipt in the form that was signed: the old stream name, the rest byte for byte.
    const run = renamed.filter((e) => e.stream_id === r.receipts[0]!.receipt.stream_id.replace('run-', 'run/'));
    const issued = run.find((e) => e.type === 'ReceiptIssued')!;
    const d = issued.data as EventData<'ReceiptIssued'>;
    const rebuilt = buildReceipt(run.filter((e) => e.stream_version <= d.head_version))!;
    expect(rebuilt.stream_id.startsWith('run/')).toBe(true);
    expect(asSigned(rebuilt, d.receipt_digest)?.stream_id.startsWith('run-')).toBe(true);
    expect(asSigned({ ...rebuilt, reason: 'forged' }, d.receipt_digest)).toBeNull();
  });

  it('still catches an edit of a renamed row', () => {
    const renamed = old.map((e) => ({ ...structuredClone(e), stream_id: currentStreamId(e.stream_id, e.tenant_id) }));
    const e = renamed.find((x) => x.type === 'DecisionRequested')!;
    (e.data['request'] as { context: { amount: number } }).context.amount += 1;
    expect(eventHashMatches(e)).toBe(false);
    expect(replay(renamed).divergences).toEqual([{ stream_id: e.stream_id, position: e.position, problem: expect.stringMatching(/hash does not match/) }]);
  });

  it('refuses a stream that names one tenant and holds another\'s events, even re-chained', () => {
    const moved = current.map((e) => structuredClone(e));
    const policy = moved.filter((e) => e.stream_id.startsWith('policy/'));
    for (const e of policy) e.stream_id = 'policy/acme/corp-refunds';
    rechain(moved, 'policy/acme/corp-refunds');
    expect(replay(moved).divergences).toContainEqual({ stream_id: 'policy/acme/corp-refunds', position: policy[0]!.position, problem: 'stream policy/acme/corp-refunds holds an event of tenant acme-corp' });
  });
});
