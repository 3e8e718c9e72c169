import type { EventData, PrincipalAccess, StoredEvent } from '../../schemas/events.ts';
import { actsForAllows } from '../identity/agent-binding.ts';
import { canonicalJson } from '../receipts/canonical.ts';

/**
 * A tenant's stream (`tenant/<tenant>`) folded: who was a member with which roles, groups and agent
 * permissions, when each joined and left each approver group, which keys were minted and revoked, and the
 * tenant's settings and judgment evaluator. Pure over the stream's events (in version order, already chain-checked and upcast), so
 * the auditor's replay answers "who joined the finance group, approved, and left" from the log alone.
 */

export type GroupStint = { group: string; principal_id: string; joined_at: string; left_at: string | null };
export type MemberSummary = {
  principal_id: string;
  kind: 'person' | 'agent';
  platform_admin: boolean;
  access: PrincipalAccess;
  keys: { minted: number; revoked: number };
  changes: number;
};
export type TenantMembership = {
  tenant_id: string;
  config: EventData<'TenantCreated'>['config'] | null;
  /** The judgment evaluator as last recorded (its key only as a fingerprint); null when none is set. */
  evaluator: EventData<'EvaluatorChanged'>['after'];
  members: MemberSummary[];
  groups: GroupStint[];
  events: number;
};
export type MembershipProblem = { position: string; problem: string };

/** Every version of a principal's access, by the global position it took effect at (for checks of runs). */
export type AccessTimeline = Map<string, Array<{ position: bigint; access: PrincipalAccess }>>;

export function foldTenantStream(tenantId: string, events: readonly StoredEvent[]): { membership: TenantMembership; problems: MembershipProblem[]; timeline: AccessTimeline } {
  const problems: MembershipProblem[] = [];
  const members = new Map<string, MemberSummary>();
  const keys = new Map<string, { principal_id: string; revoked: boolean }>();
  const stints: GroupStint[] = [];
  const timeline: AccessTimeline = new Map();
  let config: TenantMembership['config'] = null;
  let evaluator: TenantMembership['evaluator'] = null;
  let evaluatorSeen = false;
  const same = (a: unknown, b: unknown) => canonicalJson(a) === canonicalJson(b);
  const enter = (id: string, e: StoredEvent, before: PrincipalAccess | null, after: PrincipalAccess) => {
    const was = before && !before.disabled ? new Set(before.groups) : new Set<string>();
    const now = after.disabled ? new Set<string>() : new Set(after.groups);
    for (const g of now) if (!was.has(g)) stints.push({ group: g, principal_id: id, joined_at: e.recorded_at, left_at: null });
    for (const g of was) {
      if (now.has(g)) continue;
      const open = stints.findLast((s) => s.group === g && s.principal_id === id && s.left_at === null);
      if (open) open.left_at = e.recorded_at;
    }
    const list = timeline.get(id) ?? [];
    list.push({ position: BigInt(e.position), access: after });
    timeline.set(id, list);
  };
  for (const e of events) {
    switch (e.type) {
      case 'TenantCreated': {
        const d = e.data as EventData<'TenantCreated'>;
        if (config !== null) problems.push({ position: e.position, problem: `tenant ${tenantId} is created twice` });
        config = d.config;
        break;
      }
      case 'TenantChanged': {
        const d = e.data as EventData<'TenantChanged'>;
        if (config !== null && !same(config, d.before)) problems.push({ position: e.position, problem: `TenantChanged by ${d.by}: its "before" is not the settings the stream recorded` });
        config = d.after;
        break;
      }
      case 'PrincipalCreated': {
        const d = e.data as EventData<'PrincipalCreated'>;
        if (members.has(d.principal_id)) {
          problems.push({ position: e.position, problem: `principal ${d.principal_id} is created twice` });
          break;
        }
        members.set(d.principal_id, { principal_id: d.principal_id, kind: d.kind, platform_admin: d.platform_admin, access: d.access, keys: { minted: 0, revoked: 0 }, changes: 0 });
        enter(d.principal_id, e, null, d.access);
        break;
      }
      case 'PrincipalChanged': {
        const d = e.data as EventData<'PrincipalChanged'>;
        const m = members.get(d.principal_id);
        if (!m) {
          // A member created before its tenant's stream recorded identity changes: adopted from `before`.
          members.set(d.principal_id, { principal_id: d.principal_id, kind: d.after.agent_id !== null ? 'agent' : 'person', platform_admin: false, access: d.after, keys: { minted: 0, revoked: 0 }, changes: 1 });
          enter(d.principal_id, e, d.before, d.after);
          break;
        }
        if (!same(m.access, d.before)) problems.push({ position: e.position, problem: `PrincipalChanged of ${d.principal_id} by ${d.by}: its "before" is not what the stream recorded` });
        enter(d.principal_id, e, m.access, d.after);
        m.access = d.after;
        m.changes += 1;
        break;
      }
      case 'PlatformAdminRevoked': {
        const d = e.data as EventData<'PlatformAdminRevoked'>;
        const m = members.get(d.principal_id);
        if (!m?.platform_admin) {
          problems.push({ position: e.position, problem: `PlatformAdminRevoked of ${d.principal_id} by ${d.by}: not a platform admin of this tenant` });
          break;
        }
        m.platform_admin = false;
        m.changes += 1;
        break;
      }
      case 'ApiKeyCreated': {
        const d = e.data as EventData<'ApiKeyCreated'>;
        if (keys.has(d.key_id)) problems.push({ position: e.position, problem: `API key ${d.key_id} is minted twice` });
        keys.set(d.key_id, { principal_id: d.principal_id, revoked: false });
        const m = members.get(d.principal_id);
        if (m) m.keys.minted += 1;
        break;
      }
      case 'ApiKeyRevoked': {
        const d = e.data as EventData<'ApiKeyRevoked'>;
        const k = keys.get(d.key_id);
        if (k && k.principal_id !== d.principal_id) problems.push({ position: e.position, problem: `API key ${d.key_id} of ${k.principal_id} is revoked as ${d.principal_id}'s` });
        if (k?.revoked) problems.push({ position: e.position, problem: `API key ${d.key_id} is revoked twice` });
        if (k) k.revoked = true;
        const m = members.get(d.principal_id);
        if (m) m.keys.revoked += 1;
        break;
      }
      case 'DelegationGranted':
      case 'DelegationRevoked': {
        // Who may answer for whom: both ends are members of the tenant the stream knows of.
        const d = e.data as EventData<'DelegationGranted'>;
        for (const who of [d.from, d.to]) if (!members.has(who)) problems.push({ position: e.position, problem: `${e.type} ${d.delegation_id} names ${who}, who is not a member of the tenant` });
        break;
      }
      case 'EvaluatorChanged': {
        const d = e.data as EventData<'EvaluatorChanged'>;
        if (d.before === null && d.after === null) problems.push({ position: e.position, problem: `EvaluatorChanged by ${d.by} changes nothing` });
        // The first change may follow an evaluator set before its changes were recorded: its before is taken as given.
        if (evaluatorSeen && !same(evaluator, d.before)) problems.push({ position: e.position, problem: `EvaluatorChanged by ${d.by}: its "before" is not the evaluator the stream recorded` });
        evaluator = d.after;
        evaluatorSeen = true;
        break;
      }
      default:
        problems.push({ position: e.position, problem: `${e.type} does not belong on a tenant stream` });
    }
  }
  return { membership: { tenant_id: tenantId, config, evaluator, members: [...members.values()], groups: stints, events: events.length }, problems, timeline };
}

/**
 * Whether a run's DecisionRequested agrees with who its principal was when it asked: the agent it asked as is
 * the principal's agent id, or (then marked with acting_principal) one of its acts_for. The API decides before
 * the run's first events are written, so a change that committed in between is allowed for: the version in
 * effect at the run's position or the one before it must allow the request. Null when it agrees, or when the
 * stream has no record of the principal (a member older than the stream's identity events).
 */
export function checkRunAgent(timeline: AccessTimeline | undefined, run: StoredEvent): string | null {
  if (run.type !== 'DecisionRequested') return null;
  const d = run.data as EventData<'DecisionRequested'>;
  const history = timeline?.get(d.requested_by);
  if (!history) return null;
  const at = BigInt(run.position);
  const i = history.findLastIndex((h) => h.position < at);
  if (i < 0) return null;
  const verdicts = [history[i]!.access, ...(i > 0 ? [history[i - 1]!.access] : [])].map((access) => agentVerdict(access, d));
  return verdicts.includes(null) ? null : verdicts[0]!;
}

function agentVerdict(access: PrincipalAccess, d: EventData<'DecisionRequested'>): string | null {
  const agent = d.request.agent.id;
  if (access.agent_id === agent) return d.acting_principal === undefined ? null : `it is marked as acting for ${agent}, which is ${d.requested_by}'s own agent id`;
  if (actsForAllows(access.acts_for, agent)) {
    return d.acting_principal === d.requested_by ? null : `${d.requested_by} acted for ${agent} without it being recorded (acting_principal)`;
  }
  return `${d.requested_by} asked as agent ${agent}, which was neither its agent id (${access.agent_id ?? 'none'}) nor in its acts_for then`;
}

/**
 * Whether each answer in a run came from someone who could give it then (invariant 6, from the log alone): an
 * enabled member with the approver role in one of the round's groups (as escalations left them). The worker
 * checks the member's access when the answer arrives, so a change that committed in between is allowed for
 * as in checkRunAgent. Answers by principals the stream has no record of are not judged.
 */
export function checkRunApprovals(timeline: AccessTimeline | undefined, run: readonly StoredEvent[]): MembershipProblem[] {
  if (!timeline) return [];
  const groups = new Map<number, string[]>();
  const problems: MembershipProblem[] = [];
  for (const e of run) {
    if (e.type === 'ApprovalRequested') groups.set((e.data as EventData<'ApprovalRequested'>).round, (e.data as EventData<'ApprovalRequested'>).groups);
    if (e.type === 'ApprovalEscalated') groups.set((e.data as EventData<'ApprovalEscalated'>).round, (e.data as EventData<'ApprovalEscalated'>).groups);
    if (e.type !== 'ApprovalGranted' && e.type !== 'ApprovalRejected') continue;
    const d = e.data as EventData<'ApprovalGranted'>;
    const history = timeline.get(d.approver_id);
    if (!history) continue;
    const i = history.findLastIndex((h) => h.position < BigInt(e.position));
    const roundGroups = groups.get(d.round) ?? [];
    const could = (a: PrincipalAccess) => !a.disabled && a.roles.includes('approver') && a.groups.some((g) => roundGroups.includes(g));
    const versions = i < 0 ? [] : [history[i]!.access, ...(i > 0 ? [history[i - 1]!.access] : [])];
    if (!versions.some(could)) {
      problems.push({ position: e.position, problem: `${d.approver_id} answered round ${d.round} (groups ${roundGroups.join(', ')}) but was not then an enabled approver of any of them` });
    }
  }
  return problems;
}
