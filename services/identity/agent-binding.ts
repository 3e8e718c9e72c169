import { CountersignError } from '../errors.ts';

/**
 * Who a key decides as. An agent is who its key says: the request body may leave the agent out (the key's
 * own agent id is used) or name it, and then it must be the key's agent id or one the principal may act
 * for (`acts_for`, set by an admin for a gateway or an orchestrator). Pure: the API calls it before it
 * evaluates, counts or writes anything.
 */

export type AgentIdentity = { id: string; roles: readonly string[]; agent_id: string | null; acts_for: readonly string[] };

export type AgentBinding =
  | { ok: true; agentId: string; actingFor: boolean }
  | { ok: false; code: 'agent_required' | 'agent_mismatch'; message: string };

const NOT_AGENT_ID = /[^A-Za-z0-9._:@-]+/g;

/** An agent's default agent id: its name, each run of characters an agent id cannot hold made '-'. */
export function defaultAgentId(name: string): string | null {
  const slug = name.replace(NOT_AGENT_ID, '-').replace(/^-+|-+$/g, '').slice(0, 200);
  return slug === '' ? null : slug;
}

/** True when an acts_for list covers this agent id: an exact entry, or a prefix entry ending in `*`. */
export function actsForAllows(actsFor: readonly string[], agentId: string): boolean {
  return actsFor.some((entry) => (entry.endsWith('*') ? agentId.startsWith(entry.slice(0, -1)) : entry === agentId));
}

export function bindAgent(p: AgentIdentity, asked: string | undefined): AgentBinding {
  if (asked === undefined) {
    if (p.agent_id !== null) return { ok: true, agentId: p.agent_id, actingFor: false };
    return { ok: false, code: 'agent_required', message: 'this key has no agent id of its own: name the agent it acts for in agent.id' };
  }
  if (asked === p.agent_id) return { ok: true, agentId: asked, actingFor: false };
  if (actsForAllows(p.acts_for, asked)) return { ok: true, agentId: asked, actingFor: true };
  return {
    ok: false,
    code: 'agent_mismatch',
    message: p.agent_id === null
      ? `this key may not ask as agent ${asked}: it has no agent id and its acts_for does not list it`
      : `this key decides as agent ${p.agent_id}, not ${asked}`,
  };
}

/** bindAgent, as the API answers a refusal: 400 naming agent.id when it is missing, 403 when it is someone else. */
export function requireAgent(p: AgentIdentity, asked: string | undefined, path = 'agent.id'): { agentId: string; actingFor: boolean } {
  const b = bindAgent(p, asked);
  if (b.ok) return { agentId: b.agentId, actingFor: b.actingFor };
  if (b.code === 'agent_required') throw new CountersignError('validation_failed', b.message, { errors: [{ path, message: 'required for this key' }] });
  throw new CountersignError('agent_mismatch', b.message, { errors: [{ path, message: 'not the agent of this key' }] });
}

/** A principal whose only role is `agent` reads only what it asked for itself (decisions, receipts). */
export function readsOnlyOwn(p: { roles: readonly string[] }): boolean {
  return p.roles.every((role) => role === 'agent');
}
