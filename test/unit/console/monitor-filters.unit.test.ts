import { describe, expect, it } from 'vitest';
import { filtersFromSearch, searchOf } from '../../../services/console/src/monitor-filters.ts';

describe("the console monitor's filters in the address", () => {
  it('reads every filter the API takes and writes them back in a fixed order', () => {
    const search = '?decision=DENY&status=final&policy_id=monitor-guard&rule=block-wires&agent=pay-bot&tool=wire_tool&operation=Send&policy_version=3&since=2026-01-01T00%3A00%3A00.000Z&until=2026-02-01T00%3A00%3A00.000Z&limit=20&cursor=abc';
    const { query, ignored } = filtersFromSearch(search);
    expect(ignored).toEqual([]);
    expect(query).toEqual({
      decision: 'DENY', status: 'final', policy_id: 'monitor-guard', rule: 'block-wires', agent: 'pay-bot', tool: 'wire_tool', operation: 'Send',
      policy_version: 3, since: '2026-01-01T00:00:00.000Z', until: '2026-02-01T00:00:00.000Z', limit: 20, cursor: 'abc',
    });
    expect(searchOf(query)).toBe(search);
    expect(searchOf({})).toBe('');
  });

  it('leaves out and names what the API could not take, instead of failing the page', () => {
    const { query, ignored } = filtersFromSearch(`?decision=MAYBE&status=done&policy_version=-1&since=yesterday&limit=500&agent=${'a'.repeat(201)}&rule=%07bell&tool=ok`);
    expect(query).toEqual({ tool: 'ok' });
    expect(ignored.sort()).toEqual(['agent', 'decision', 'limit', 'policy_version', 'rule', 'since', 'status']);
  });

  it('turns times with an offset into the instant the API compares', () => {
    expect(filtersFromSearch('?since=2026-03-01T10:00:00%2B02:00').query.since).toBe('2026-03-01T08:00:00.000Z');
  });
});
