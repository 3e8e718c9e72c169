import { describe, expect, it } from 'vitest';
import { mayHear } from '../../../services/api/approval-stream-hub.ts';
import type { Principal } from '../../../services/identity/principals.ts';

// Who hears of an inbox change on GET /v1/approvals/stream (the tenant is checked before, by the hub's index).
const person = (id: string, roles: Principal['roles'], groups: string[]): Principal => ({
  id, tenant_id: 't', name: id, kind: 'person', roles, groups, platform_admin: false, agent_id: null, acts_for: [], key_prefix: 'cs_x',
});
const round = { groups: ['finance'], excluded: ['prn_bot'], answered: ['prn_done'], only: null };

describe('mayHear', () => {
  it('an approver of one of the round\'s groups hears of it opening and closing', () => {
    const ann = person('prn_ann', ['approver'], ['ops', 'finance']);
    expect(mayHear(ann, { kind: 'decision', status: 'open' }, round)).toBe(true);
    expect(mayHear(ann, { kind: 'override', status: 'closed' }, round)).toBe(true);
  });

  it('nobody outside the groups, without the approver role, or who asked for it', () => {
    expect(mayHear(person('prn_ops', ['approver'], ['ops']), { kind: 'decision', status: 'open' }, round)).toBe(false);
    expect(mayHear(person('prn_aud', ['auditor', 'admin'], ['finance']), { kind: 'decision', status: 'open' }, round)).toBe(false);
    expect(mayHear(person('prn_bot', ['approver'], ['finance']), { kind: 'decision', status: 'open' }, round)).toBe(false);
  });

  it('one who answered it hears no "open" again (an escalation), but does hear it close', () => {
    const done = person('prn_done', ['approver'], ['finance']);
    expect(mayHear(done, { kind: 'decision', status: 'open' }, round)).toBe(false);
    expect(mayHear(done, { kind: 'decision', status: 'closed' }, round)).toBe(true);
  });

  it('an answer is told to exactly who answered, and whom it was answered for', () => {
    const only = { groups: null, excluded: [], answered: [], only: ['prn_delegate', 'prn_away'] };
    expect(mayHear(person('prn_away', ['approver'], ['finance']), { kind: 'decision', status: 'closed' }, only)).toBe(true);
    expect(mayHear(person('prn_other', ['approver'], ['finance']), { kind: 'decision', status: 'closed' }, only)).toBe(false);
  });

  it('reviews: admins who wrote none of the change', () => {
    const review = { groups: null, excluded: ['prn_author'], answered: [], only: null };
    expect(mayHear(person('prn_admin', ['admin'], []), { kind: 'activation_review', status: 'open' }, review)).toBe(true);
    expect(mayHear(person('prn_author', ['admin'], []), { kind: 'activation_review', status: 'open' }, review)).toBe(false);
    expect(mayHear(person('prn_appr', ['approver'], ['finance']), { kind: 'activation_review', status: 'open' }, review)).toBe(false);
  });
});
