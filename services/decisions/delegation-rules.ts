import type { Round, RunView } from './run-view.ts';

/**
 * A delegation as the database confirms it when an answer arrives: `from` is away, and `to` (a member of the
 * same approver group) answers for them between `starts_at` and `ends_at`.
 */
export type ActiveDelegation = { id: string; from: string; to: string; group: string; starts_at: string; ends_at: string };

/**
 * The delegation an answer is given under, if any: one to this approver, in force now, for a group of the round
 * the approver is still in, from someone who is not the requester and has not answered the round (nor had it
 * answered for them). A delegate answers once, like anyone: the answer is recorded on behalf of the delegator,
 * whose own answer is then not taken, so a delegation never lets one person count twice.
 */
export function delegationFor(view: RunView, round: Round, a: { approver_id: string; approver_groups: string[]; delegations?: ActiveDelegation[] | undefined }, now: Date): ActiveDelegation | undefined {
  const t = now.getTime();
  const answered = new Set([...round.approvals, ...round.rejections].flatMap((x) => [x.approver_id, ...(x.on_behalf_of ? [x.on_behalf_of] : [])]));
  return (a.delegations ?? []).find((d) => d.to === a.approver_id && d.from !== a.approver_id
    && d.from !== view.requested_by && d.from !== round.requested_by
    && round.groups.includes(d.group) && a.approver_groups.includes(d.group)
    && t >= Date.parse(d.starts_at) && t < Date.parse(d.ends_at)
    && !answered.has(d.from));
}

/** An answer command with the delegations the authorize step found (none: the command as it was). */
export function withDelegations<C extends { type: string; data: object }>(command: C, delegations: ActiveDelegation[] | undefined): C {
  return delegations?.length && command.type === 'AnswerRound' ? { ...command, data: { ...command.data, delegations } } : command;
}
