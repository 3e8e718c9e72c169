import type { Evaluation } from '../../schemas/decision.ts';
import type { TenantSettings } from '../../schemas/identity.ts';
import { settingSeconds } from '../../schemas/duration.ts';
import type { Snapshot } from '../policy/index.ts';
import type { RunWindows } from '../../workflows/decision-workflow.ts';

/**
 * A run's override settings (who decides an override request, how long it waits, how long after a DENY one may
 * be asked): the deciding policy's `override` block, field by field, over the tenant's settings, over the
 * deployment's configuration; and the tenant's approval_timeout, when it has one. Pure. The result is part of
 * the run's signed start (RunStartData.windows), so each run keeps the settings it started with, and the
 * auditor sees them. A tenant value recorded before the settings' bounds (1s to 30d) and outside them falls
 * back to the default.
 */
export function overrideWindows(deployment: RunWindows, tenant: TenantSettings | undefined, snapshot: Snapshot, evaluation: Evaluation): RunWindows {
  const policy = decidingPolicy(snapshot, evaluation)?.override;
  return {
    ...deployment,
    override_groups: policy?.groups ?? tenant?.override_groups ?? deployment.override_groups,
    override_timeout_sec: policy?.timeout_sec ?? settingSeconds(tenant?.override_timeout) ?? deployment.override_timeout_sec,
    override_sec: policy?.window_sec ?? settingSeconds(tenant?.override_window) ?? deployment.override_sec,
    ...approvalTimeout(tenant),
  };
}

/** The policy of the deciding rule (the first matched rule with the final decision and the deciding name); none when the tenant default decided. */
function decidingPolicy(snapshot: Snapshot, e: Evaluation) {
  const m = e.matched_rules.find((r) => r.decision === e.decision && r.rule === e.matched_rule);
  return m ? snapshot.policies.find((p) => p.policy_id === m.policy_id && p.version === m.version) : undefined;
}

/** The tenant's approval_timeout as the run's start records it: only when set (and within the settings' bounds). */
export function approvalTimeout(tenant: TenantSettings | undefined): { approval_timeout_sec?: number } {
  const sec = settingSeconds(tenant?.approval_timeout);
  return sec === undefined ? {} : { approval_timeout_sec: sec };
}
