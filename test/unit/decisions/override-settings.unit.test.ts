import { describe, expect, it } from 'vitest';
import type { Evaluation } from '../../../schemas/decision.ts';
import { overrideWindows } from '../../../services/decisions/override-settings.ts';
import { assembleEffective } from '../../../services/policy/compile.ts';
import { compileDocument } from '../../../services/policy/compile-document.ts';

// A run's override settings: the deciding policy's block, over the tenant's settings, over the deployment's.

const doc = (override?: unknown) => ({
  apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'p' }, rules: [{ name: 'no', match: { tool: 't' }, decision: 'DENY' }], ...(override ? { override } : {}),
});
const compiled = (override?: unknown) => {
  const r = compileDocument(doc(override), 1);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.policy;
};
const deployment = { override_sec: 86_400, outcome_sec: 86_400, override_groups: ['admins'], override_timeout_sec: 86_400 };
const denied = (rule: string | null): Evaluation => ({
  decision: 'DENY', reason: 'no', matched_rule: rule, matched_rules: rule ? [{ policy_id: 'p', version: 1, rule, decision: 'DENY' }] : [], constraints: {},
  snapshot_hash: `sha256:${'a'.repeat(64)}`, facts: {}, now: '2026-12-01T10:00:00.000Z',
});

describe('override settings', () => {
  it('compile: only the fields given, and a policy without the block compiles as before', () => {
    expect(compiled().override).toBeUndefined();
    expect(compiled({ groups: ['sec'], window: '2h' }).override).toEqual({ groups: ['sec'], window_sec: 7200 });
    const bad = compileDocument(doc({ groups: [], timeout: 'soon', extra: 1 }), 1);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.issues.map((i) => i.path.join('.')).sort()).toEqual(['override.extra', 'override.groups', 'override.timeout']);
  });

  it('the deciding policy wins field by field over the tenant, which wins over the deployment', () => {
    const plain = assembleEffective([compiled()]);
    const own = assembleEffective([compiled({ groups: ['sec'], timeout: '10m' })]);
    expect(overrideWindows(deployment, {}, plain, denied('no'))).toEqual(deployment);
    const tenant = { override_groups: ['fin'], override_timeout: '2h', override_window: '3h' };
    expect(overrideWindows(deployment, tenant, plain, denied('no'))).toEqual({ ...deployment, override_groups: ['fin'], override_timeout_sec: 7200, override_sec: 10_800 });
    expect(overrideWindows(deployment, tenant, own, denied('no'))).toEqual({ ...deployment, override_groups: ['sec'], override_timeout_sec: 600, override_sec: 10_800 });
    // The tenant default decided (no rule): the policy's block does not apply.
    expect(overrideWindows(deployment, tenant, own, denied(null)).override_groups).toEqual(['fin']);
  });
});
