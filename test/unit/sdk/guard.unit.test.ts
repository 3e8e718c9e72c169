import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConstraintExceeded, Countersign, CountersignApiError, DecisionDenied } from '../../../services/sdk/index.ts';

/** A fake API: answers by route, records what it was asked. */
function fakeApi(routes: Record<string, (body: unknown) => { status: number; body: unknown }>) {
  const calls: Array<{ method: string; path: string; body: unknown }> = [];
  const fetchFn: typeof fetch = async (input, init) => {
    const url = new URL(input);
    const key = `${init?.method ?? 'GET'} ${url.pathname}`;
    const body = init?.body ? JSON.parse(init.body as string) : undefined;
    calls.push({ method: init?.method ?? 'GET', path: url.pathname + url.search, body });
    const route = Object.entries(routes).find(([k]) => new RegExp(`^${k}$`).test(key));
    const out = route ? route[1](body) : { status: 404, body: { code: 'not_found', detail: `no route ${key}` } };
    return new Response(JSON.stringify(out.body), { status: out.status, headers: { 'content-type': 'application/json' } });
  };
  return { calls, client: new Countersign({ url: 'http://api.test', apiKey: 'cs_x', fetch: fetchFn, backoffMs: 1 }) };
}

const result = (decision: string, extra: Record<string, unknown> = {}) => ({
  decision_id: 'dec_1', decision, status: decision === 'REQUIRE_APPROVAL' ? 'pending_approval' : 'final', reason: `because ${decision}`,
  matched_rule: 'r', matched_rules: [], constraints: {}, snapshot_hash: 'sha256:x', ...extra,
});
const describeCall = () => ({ agent: { id: 'a' }, action: { tool: 't' } });

afterEach(() => vi.useRealTimers());

describe('guard', () => {
  it('max_runtime_sec becomes a deadline: a tool that runs past it fails with ConstraintExceeded, and the outcome says failed', async () => {
    vi.useFakeTimers();
    const { client, calls } = fakeApi({
      'POST /v1/decisions': () => ({ status: 200, body: result('ALLOW_WITH_CONSTRAINTS', { constraints: { max_runtime_sec: 5 } }) }),
      'POST /v1/decisions/dec_1/outcome': () => ({ status: 200, body: {} }),
    });
    const slow = client.guard(() => new Promise<string>(() => {}), describeCall);
    const pending = slow().catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(5_000);
    const err = await pending;
    expect(err).toBeInstanceOf(ConstraintExceeded);
    expect(calls.at(-1)).toMatchObject({ path: '/v1/decisions/dec_1/outcome', body: { status: 'failed' } });
  });

  it('a tool that finishes within max_runtime_sec returns its result and reports success', async () => {
    const { client, calls } = fakeApi({
      'POST /v1/decisions': () => ({ status: 200, body: result('ALLOW_WITH_CONSTRAINTS', { constraints: { max_runtime_sec: 5 } }) }),
      'POST /v1/decisions/dec_1/outcome': () => ({ status: 200, body: {} }),
    });
    await expect(client.guard(async () => 42, describeCall, { outcomeOutput: (r) => ({ value: r }) })()).resolves.toBe(42);
    expect(calls.at(-1)).toMatchObject({ body: { status: 'succeeded', output: { value: 42 } } });
  });

  it('a DENY after approval (rejected) throws DecisionDenied', async () => {
    const { client } = fakeApi({
      'POST /v1/decisions': () => ({ status: 200, body: result('REQUIRE_APPROVAL') }),
      'GET /v1/decisions/dec_1': () => ({ status: 200, body: result('DENY', { reason: 'rejected by alice', reason_code: 'approval_rejected', policy_id: 'refunds' }) }),
    });
    const err = await client.guard(async () => 1, describeCall)().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DecisionDenied);
    expect((err as DecisionDenied).reason).toBe('rejected by alice');
    expect(err).toMatchObject({ reasonCode: 'approval_rejected', policyId: 'refunds' });
  });

  it('an approved request runs the tool after the wait', async () => {
    let polls = 0;
    const { client } = fakeApi({
      'POST /v1/decisions': () => ({ status: 200, body: result('REQUIRE_APPROVAL') }),
      'GET /v1/decisions/dec_1': () => ({ status: 200, body: ++polls < 3 ? result('REQUIRE_APPROVAL') : result('ALLOW') }),
      'POST /v1/decisions/dec_1/outcome': () => ({ status: 200, body: {} }),
    });
    await expect(client.guard(async () => 'done', describeCall, { approvalTimeoutMs: 600_000 })()).resolves.toBe('done');
    expect(polls).toBe(3);
  });

  it('an outcome route the server does not have yet is tolerated; any other error of it is not swallowed by reportOutcome', async () => {
    const { client } = fakeApi({ 'POST /v1/decisions/dec_2/outcome': () => ({ status: 404, body: { code: 'not_found', detail: 'decision dec_2 not found' } }) });
    await expect(client.reportOutcome('dec_1', { status: 'succeeded' })).resolves.toEqual({ accepted: false });
    await expect(client.reportOutcome('dec_2', { status: 'succeeded' })).rejects.toBeInstanceOf(CountersignApiError);
  });

  it('retries 503 with the same body, and gives up on 4xx at once', async () => {
    let n = 0;
    const { client, calls } = fakeApi({ 'POST /v1/decisions': () => (++n < 3 ? { status: 503, body: { code: 'dependency_unavailable', detail: 'temporal is unavailable' } } : { status: 200, body: result('ALLOW') }) });
    await expect(client.decide(describeCall())).resolves.toMatchObject({ decision: 'ALLOW' });
    expect(new Set(calls.map((c) => JSON.stringify(c.body))).size).toBe(1);
    const bad = fakeApi({ 'POST /v1/decisions': () => ({ status: 400, body: { code: 'validation_failed', detail: 'x' } }) });
    await expect(bad.client.decide(describeCall())).rejects.toMatchObject({ status: 400, code: 'validation_failed' });
    expect(bad.calls).toHaveLength(1);
  });
});
