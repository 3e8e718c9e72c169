import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Evaluation, type DecisionRequest } from '../../../schemas/decision.ts';
import { compile, evaluate, parsePolicyText, type Snapshot } from '../../../services/policy/index.ts';

/**
 * Fuzzing the compiler with generated documents: near-valid policies (so the deep paths run) mixed with
 * junk. The properties: compile never throws, errors always carry a path and message, a compiled
 * snapshot evaluates any request without throwing into a schema-valid Evaluation, identically after a
 * JSON round trip. Seeded, so a failure reproduces.
 */
const SEED = 20250108;
const junk = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 2 }));
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(fc.oneof({ weight: 30, arbitrary: a }, { weight: 1, arbitrary: junk }), { nil: undefined });
const word = fc.constantFrom('payment_tool', 'deploy_tool', 'shell_exec', 'pay*', '*', 'x', 'Refund', 'Deploy', 'prod', 'staging');
const cel = fc.constantFrom('amount > 500', 'amount <= 100', 'vendor_status == "approved"', 'tools_used.contains("x")', 'missing > 1', '"s"', 'amount +', 'now.getHours("UTC") > 3', 'has(context.amount)', 'x.matches("a")', '1 == 1');
const decision = fc.constantFrom('ALLOW', 'DENY', 'REQUIRE_APPROVAL', 'ALLOW_WITH_CONSTRAINTS', 'MAYBE', 'allow');
const sentence = fc.constantFrom('Require manager approval for refunds over $500', 'Auto-approve refunds of $100 or less', 'No production deploys after 5pm on Fridays', 'Block external email on support agents', 'Per-day spend cap 50 USD', 'Deny shell_exec in prod', 'Flag things that look odd', 'Limit refunds to 3 per hour');
const match = fc.record(
  {
    tool: maybe(fc.oneof(word, fc.array(word, { maxLength: 3 }))),
    operation: maybe(word),
    environment: maybe(fc.oneof(word, fc.array(word, { maxLength: 2 }))),
    risk_tags: maybe(fc.array(fc.constantFrom('read', 'write', 'external'), { maxLength: 3 })),
    agent: maybe(fc.constantFrom('support-*', 'bot', '*')),
    time: maybe(fc.record({ days: maybe(fc.array(fc.constantFrom('Mon', 'Fri', 'Sun', 'Funday'), { maxLength: 3 })), after: maybe(fc.constantFrom('17:00', '09:30', '25:00')), before: maybe(fc.constantFrom('06:00', '23:59')), timezone: maybe(fc.constantFrom('UTC', 'America/New_York', 'Mars/Base')) }, { requiredKeys: [] })),
  },
  { requiredKeys: [] },
);
const rule = fc.oneof(
  { weight: 6, arbitrary: fc.record(
    {
      name: maybe(fc.constantFrom('a', 'b', 'c', 'd', 'bad name')),
      match: maybe(match),
      condition: maybe(cel),
      decision: decision,
      reason: maybe(fc.string({ minLength: 1, maxLength: 10 })),
      constraints: maybe(fc.record({ max_runtime_sec: maybe(fc.integer({ min: -1, max: 600 })), allowed_hosts: maybe(fc.array(fc.constantFrom('a', 'b'), { maxLength: 2 })) }, { requiredKeys: [] })),
      approval: maybe(fc.record({ approvers: fc.array(fc.constantFrom('sre', 'leads'), { maxLength: 2 }), timeout: maybe(fc.constantFrom('1h', '30m', 'soon')) }, { requiredKeys: ['approvers'] })),
      limit: maybe(fc.record({ kind: fc.constantFrom('rate', 'cost', 'other'), max: fc.integer({ min: -1, max: 10 }), window: fc.constantFrom('1h', '1d', 'x'), field: maybe(fc.constant('amount')) }, { requiredKeys: ['kind', 'max', 'window'] })),
      on: maybe(fc.constantFrom('request', 'outcome')),
    },
    { requiredKeys: ['decision'] },
  ) },
  fc.record({ text: sentence }),
  fc.record({ condition: sentence, effect: fc.constantFrom('require_human_approval', 'auto_approve') }),
  fc.record({ type: fc.constant('deterministic'), expr: cel }),
  junk,
);
const policyDoc = fc.record(
  {
    apiVersion: fc.oneof({ weight: 9, arbitrary: fc.constant('countersign/v1') }, { weight: 1, arbitrary: junk }),
    kind: fc.constant('Policy'),
    metadata: fc.record({ id: fc.constantFrom('p1', 'p2', 'p3') }),
    scope: maybe(fc.constantFrom({ level: 'tenant' }, { level: 'platform' }, { level: 'agent', agent: 'bot' }, { level: 'agent' })),
    tools: maybe(fc.record({ denied: maybe(fc.array(word, { maxLength: 2 })), allowed: maybe(fc.array(word, { maxLength: 2 })), require_approval: maybe(fc.array(word, { maxLength: 2 })) }, { requiredKeys: [] })),
    models: maybe(fc.record({ allowed_providers: maybe(fc.array(fc.constantFrom('openai', 'anthropic'), { maxLength: 2 })), denied_models: maybe(fc.array(fc.constant('gpt-3.5-turbo'))) }, { requiredKeys: [] })),
    rules: fc.array(rule, { maxLength: 6 }),
  },
  { requiredKeys: ['apiVersion', 'kind', 'metadata', 'rules'] },
);
const request = fc.record({
  agent: fc.record({ id: fc.constantFrom('bot', 'support-1', 'other') }),
  action: fc.record({ tool: word, operation: fc.option(word, { nil: undefined }) }, { requiredKeys: ['tool'] }),
  context: fc.record({ environment: fc.option(word, { nil: undefined }), risk_tags: fc.option(fc.array(fc.constantFrom('read', 'write', 'external')), { nil: undefined }), amount: fc.option(fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.string({ maxLength: 3 })), { nil: undefined }), tools_used: fc.option(fc.array(fc.constantFrom('x', 'y')), { nil: undefined }) }, { requiredKeys: [] }),
  model: fc.option(fc.record({ provider: fc.constantFrom('openai', 'google'), model: fc.constantFrom('gpt-4', 'gpt-3.5-turbo') }), { nil: undefined }),
  policy_rules: fc.array(rule, { maxLength: 2 }),
});
const now = fc.date({ min: new Date('2020-01-01T00:00:00Z'), max: new Date('2030-01-01T00:00:00Z'), noInvalidDate: true });

describe('compiler fuzz', () => {
  it('compiles generated documents without throwing; compiled snapshots evaluate any request', () => {
    let compiled = 0;
    fc.assert(
      fc.property(fc.array(policyDoc, { minLength: 1, maxLength: 3 }), fc.array(fc.tuple(request, now), { minLength: 1, maxLength: 4 }), (docs, requests) => {
        // Distinct ids: duplicate ids are a compile error tested elsewhere, and would hide the evaluator here.
        const r = compile(docs.map((document, i) => ({ document: { ...document, metadata: { id: `p${i}` } }, version: i + 1 })));
        if (!r.ok) {
          expect(r.errors.length).toBeGreaterThan(0);
          for (const e of r.errors) {
            expect(typeof e.path).toBe('string');
            expect(e.message.length).toBeGreaterThan(0);
          }
          return;
        }
        compiled++;
        const copy = JSON.parse(JSON.stringify(r.snapshot)) as Snapshot;
        for (const [q, at] of requests) {
          const e = evaluate(r.snapshot, q as unknown as DecisionRequest, {}, at);
          expect(Evaluation.safeParse(e).success).toBe(true);
          expect(evaluate(copy, q as unknown as DecisionRequest, {}, at)).toEqual(e);
        }
      }),
      { seed: SEED, numRuns: 400 },
    );
    // The generator must reach the evaluator, or the second half of the property proves nothing.
    expect(compiled).toBeGreaterThan(20);
  }, 60_000);

  it('parses arbitrary text without throwing or hanging', () => {
    const tokens = fc.constantFrom('apiVersion: countersign/v1\n', 'kind: Policy\n', 'rules:\n', '  - ', '{', '}', '[', ']', ': ', '"', "'", '&a ', '*a', '\n', '    ', '- text: Deny shell_exec in prod\n', 'condition: "amount >"\n', '#', '!!binary ', '---\n', '? ');
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.array(tokens, { maxLength: 80 }).map((t) => t.join(''))), (text) => {
        const t = performance.now();
        const r = parsePolicyText(text, 'f.yaml');
        expect(performance.now() - t).toBeLessThan(1000);
        if (!r.ok) for (const e of r.errors) expect(e.file).toBe('f.yaml');
      }),
      { seed: SEED, numRuns: 500 },
    );
  }, 60_000);
});
