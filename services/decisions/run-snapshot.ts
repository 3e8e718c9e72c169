import type { EventData } from '../../schemas/events.ts';
import { CountersignError } from '../errors.ts';
import type { Queryable } from '../events/db.ts';
import { assembleEffective, type Snapshot } from '../policy/index.ts';
import { frozenPolicy } from '../lifecycle/policy-version.ts';
import { PLATFORM_SCOPE } from '../events/stream-ids.ts';
import type { RunView } from './run-view.ts';

/**
 * The snapshot a run started with, rebuilt from the policy versions it recorded (PolicyActivated events carry
 * each version's frozen compiled policy), and checked against the recorded hash: later activations never change it.
 */
export async function snapshotForRun(c: Queryable, view: RunView): Promise<Snapshot> {
  if (!view.evaluation) throw new CountersignError('conflict', 'the run has no evaluation yet');
  const ids = view.policies.map((p) => `${p.policy_id}@${p.version}`);
  const res = await c.query<{ tenant_id: string; data: EventData<'PolicyActivated'> }>(
    `SELECT tenant_id, data FROM events WHERE type = 'PolicyActivated' AND tenant_id = ANY($1::text[])
       AND (data->>'policy_id') || '@' || (data->>'version') = ANY($2::text[])`,
    [[view.tenant_id, PLATFORM_SCOPE], ids],
  );
  // A platform policy and a tenant's may share an id: the run's reference says which it used.
  const byId = new Map(res.rows.map((r) => [`${r.tenant_id}/${r.data.policy_id}@${r.data.version}`, r.data]));
  const frozen = view.policies.map((p) => {
    const d = byId.get(`${p.scope === 'platform' ? PLATFORM_SCOPE : view.tenant_id}/${p.policy_id}@${p.version}`);
    if (!d || d.hash !== p.hash) throw new Error(`policy ${p.policy_id} v${p.version} of run ${view.decision_id} is missing from the log`);
    const f = frozenPolicy(d);
    if (!f.ok) throw new Error(`the snapshot of run ${view.decision_id} cannot be rebuilt: ${f.problem}`);
    return f.policy;
  });
  const snapshot = assembleEffective(frozen, { defaultDecision: view.default_decision });
  if (snapshot.hash !== view.evaluation.snapshot_hash) {
    throw new Error(`the snapshot of run ${view.decision_id} cannot be rebuilt (hash differs)`);
  }
  return snapshot;
}

