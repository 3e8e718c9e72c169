// Open approval rounds for the inbox benches, written the efficient way: each run's first events
// (DecisionRequested, PolicyEvaluated: REQUIRE_APPROVAL by the example policy's big-refunds rule) and its
// ApprovalRequested, built and hash-chained offline (services/audit/synthetic-runs.ts) and INSERTed straight into
// `events` in batches of 3000 rows: the rows the workflow would have written, through the same triggers
// (the monitor's and the inbox's projections are kept by them as for any append).
import type { NewEvent, StoredEvent } from '../../schemas/events.ts';
import { exampleSnapshot, firstRunEvents, storeOffline, syntheticDecisionId } from '../../services/audit/synthetic-runs.ts';
import { runEventId, runStreamId } from '../../services/decisions/ids.ts';
import { loadOrCreateKeyring } from '../../services/receipts/keyring.ts';
import { sha256Digest } from '../../services/receipts/canonical.ts';
import { withTenant } from '../../services/events/db.ts';
import type { TestStack } from '../../test/int/harness.ts';

/** Inserts `n` open rounds for group `finance` into a tenant, as the decision workflow would have written them. */
export async function insertOpenRounds(stack: TestStack, tenantId: string, n: number, tag: string): Promise<void> {
  const keyring = await loadOrCreateKeyring(stack.env['COUNTERSIGN_KEYS_DIR']!);
  const { snapshot, policies } = exampleSnapshot();
  const now = new Date();
  const rows: StoredEvent[] = [];
  const flush = async () => {
    if (rows.length === 0) return;
    const batch = rows.splice(0, rows.length).map(({ position: _p, ...e }) => e);
    await withTenant(stack.db, tenantId, (c) => c.query(
      `INSERT INTO events (stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash)
       SELECT stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash
         FROM jsonb_to_recordset($1::jsonb) AS x(stream_id text, stream_version int, event_id text, type text, schema_version int, tenant_id text,
                                                 data jsonb, metadata jsonb, recorded_at timestamptz, prev_hash text, hash text)`,
      [JSON.stringify(batch)],
    ));
  };
  for (let i = 0; i < n; i++) {
    const decisionId = syntheticDecisionId(tag, i);
    const request = { agent: { id: `agent-${i % 7}` }, action: { tool: 'payment_tool', operation: 'Refund', args: { order: `A-${i}` } }, context: { amount: 600 + i }, policy_rules: [] };
    const first = firstRunEvents({ decisionId, tenantId, request, snapshot, policies, now, keyring });
    const evaluation = (first[1]!.data as { evaluation: { decision: string; snapshot_hash: string } }).evaluation;
    if (evaluation.decision !== 'REQUIRE_APPROVAL') throw new Error(`run ${i} is ${evaluation.decision}, not REQUIRE_APPROVAL`);
    const round: NewEvent = {
      type: 'ApprovalRequested',
      eventId: runEventId(decisionId, 3),
      data: {
        round: 1, kind: 'approval', groups: ['finance'], quorum: 1,
        // Deadlines spread over the next hours, so "soonest first" has work to do.
        deadline: new Date(now.getTime() + 3_600_000 + ((i * 7919) % n) * 1000).toISOString(),
        escalate_to: [], level_timeout_sec: 3600, on_timeout: 'DENY', requested_by: 'synthetic',
        args_digest: sha256Digest(request.action.args), snapshot_hash: evaluation.snapshot_hash,
      },
      metadata: { correlation_id: decisionId },
    };
    rows.push(...storeOffline(runStreamId(decisionId), tenantId, [...first, round], null, now, () => '0'));
    if (rows.length >= 3000) await flush();
  }
  await flush();
}

