import type { EventData, StoredEvent } from '../../schemas/events.ts';
import { verifyChain } from '../events/hash-chain.ts';
import { PLATFORM_SCOPE } from '../events/stream-ids.ts';

export type WhichPolicy = {
  decision_id: string;
  tenant_id: string;
  decision: string;
  matched_rule: string | null;
  snapshot_hash: string;
  evaluated_at: string;
  policies: Array<{ policy_id: string; version: number; hash: string; scope?: 'platform'; activated_at: string | null; activation_position: string | null; signing_key_id: string | null; activation_hash_matches: boolean }>;
  /** Problems found on the way (a broken run chain, a policy version missing from the log): the answer is not trustworthy. */
  warnings: string[];
};

/** Accepts `dec_…`, or a run's stream id (`run/dec_…`, or `run-dec_…` as written before migration 0014). */
export const decisionIdOf = (runId: string) => (runId.startsWith('run/') || runId.startsWith('run-') ? runId.slice(4) : runId);

/**
 * Which policy versions and snapshot decided a run: read from the run's PolicyEvaluated and matched to the
 * PolicyActivated events that recorded those versions. `events` is the run stream plus the policy activations
 * (any order, any source). Null when the log holds no evaluation for the run.
 */
export function whichPolicy(runEvents: readonly StoredEvent[], activations: readonly StoredEvent[]): WhichPolicy | null {
  const run = [...runEvents].sort((a, b) => a.stream_version - b.stream_version);
  const evaluated = run.find((e) => e.type === 'PolicyEvaluated');
  if (!evaluated) return null;
  const warnings: string[] = [];
  const broken = verifyChain(run);
  if (broken) warnings.push(`run chain broken at position ${broken.position}: ${broken.problem}`);
  const ev = evaluated.data as EventData<'PolicyEvaluated'>;
  const policies = ev.policies.map((p) => {
    const owner = p.scope === 'platform' ? PLATFORM_SCOPE : evaluated.tenant_id;
    const found = activations.find((a) => {
      const d = a.data as EventData<'PolicyActivated'>;
      return a.type === 'PolicyActivated' && a.tenant_id === owner && d.policy_id === p.policy_id && d.version === p.version;
    });
    const d = found?.data as EventData<'PolicyActivated'> | undefined;
    if (!found) warnings.push(`policy ${p.policy_id} v${p.version} has no activation in the log`);
    else if (d!.hash !== p.hash) warnings.push(`policy ${p.policy_id} v${p.version}: the run recorded hash ${p.hash}, the activation ${d!.hash}`);
    return {
      policy_id: p.policy_id,
      version: p.version,
      hash: p.hash,
      ...(p.scope ? { scope: p.scope } : {}),
      activated_at: found?.recorded_at ?? null,
      activation_position: found?.position ?? null,
      signing_key_id: d?.signing_key_id ?? null,
      activation_hash_matches: d?.hash === p.hash,
    };
  });
  return {
    decision_id: decisionIdOf(evaluated.stream_id),
    tenant_id: evaluated.tenant_id,
    decision: ev.evaluation.decision,
    matched_rule: ev.evaluation.matched_rule,
    snapshot_hash: ev.evaluation.snapshot_hash,
    evaluated_at: ev.evaluation.now,
    policies,
    warnings,
  };
}
