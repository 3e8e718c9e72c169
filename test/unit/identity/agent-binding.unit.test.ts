import { describe, expect, it } from 'vitest';
import { actsForAllows, bindAgent, defaultAgentId, readsOnlyOwn, requireAgent } from '../../../services/identity/agent-binding.ts';
import type { CountersignError } from '../../../services/errors.ts';

const bot = { id: 'prn_bot', roles: ['agent'], agent_id: 'pay-bot', acts_for: [] as string[] };
const gateway = { id: 'prn_gw', roles: ['agent'], agent_id: null, acts_for: ['support-bot', 'team-*'] };

describe('who a key decides as', () => {
  it('an agent left out is the key\'s own agent id', () => {
    expect(bindAgent(bot, undefined)).toEqual({ ok: true, agentId: 'pay-bot', actingFor: false });
  });

  it('the key\'s own agent id named is accepted, not as acting for', () => {
    expect(bindAgent(bot, 'pay-bot')).toEqual({ ok: true, agentId: 'pay-bot', actingFor: false });
  });

  it('any other agent id is refused for a key without acts_for', () => {
    for (const other of ['someone-else', 'pay-bot2', 'PAY-BOT', 'pay-bo', '*', '']) {
      expect(bindAgent(bot, other)).toMatchObject({ ok: false, code: 'agent_mismatch' });
    }
  });

  it('acts_for lets a gateway ask for the agents it lists (exactly, or by a prefix ending in *), and marks it', () => {
    expect(bindAgent(gateway, 'support-bot')).toEqual({ ok: true, agentId: 'support-bot', actingFor: true });
    expect(bindAgent(gateway, 'team-a')).toEqual({ ok: true, agentId: 'team-a', actingFor: true });
    expect(bindAgent(gateway, 'support-bot-2')).toMatchObject({ ok: false, code: 'agent_mismatch' });
    expect(bindAgent(gateway, 'tea')).toMatchObject({ ok: false, code: 'agent_mismatch' });
  });

  it('a key with no agent id of its own must name the agent it acts for', () => {
    expect(bindAgent(gateway, undefined)).toMatchObject({ ok: false, code: 'agent_required' });
  });

  it('refusals are a 403 naming agent.id, or a 400 when the agent must be named', () => {
    const refused = (f: () => unknown) => { try { f(); } catch (e) { return e as CountersignError; } throw new Error('not refused'); };
    expect(refused(() => requireAgent(bot, 'other'))).toMatchObject({ code: 'agent_mismatch', status: 403, errors: [{ path: 'agent.id' }] });
    expect(refused(() => requireAgent(gateway, undefined))).toMatchObject({ code: 'validation_failed', status: 400, errors: [{ path: 'agent.id' }] });
  });

  it('acts_for entries match exactly unless they end in *; * alone matches every agent', () => {
    expect(actsForAllows(['a'], 'a')).toBe(true);
    expect(actsForAllows(['a'], 'ab')).toBe(false);
    expect(actsForAllows(['a*'], 'ab')).toBe(true);
    expect(actsForAllows(['*'], 'anything')).toBe(true);
    expect(actsForAllows([], 'a')).toBe(false);
  });

  it('an agent\'s default agent id is its name, other characters made -', () => {
    expect(defaultAgentId('pay-bot')).toBe('pay-bot');
    expect(defaultAgentId('deploy bot')).toBe('deploy-bot');
    expect(defaultAgentId('  ops  bot!! ')).toBe('ops-bot');
    expect(defaultAgentId('élan')).toBe('lan');
    expect(defaultAgentId('!!!')).toBeNull();
  });

  it('only principals whose one role is agent are limited to their own runs', () => {
    expect(readsOnlyOwn({ roles: ['agent'] })).toBe(true);
    expect(readsOnlyOwn({ roles: ['agent', 'auditor'] })).toBe(false);
    expect(readsOnlyOwn({ roles: ['approver'] })).toBe(false);
  });
});
