import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Evaluation } from '../../../schemas/decision.ts';
import { loadSuiteFile } from '../../../services/cli/commands/policy-files.ts';
import { runCase } from '../../../services/policy/test-suite.ts';
import { evaluate } from '../../../services/policy/evaluate.ts';
import type { Snapshot } from '../../../services/policy/snapshot.ts';
import { DecisionRequest } from '../../../schemas/decision.ts';

// One harness for every YAML suite under test/fixtures/policy: the same runner as `countersign policy test`.
const dir = join(import.meta.dirname, '../../fixtures/policy');
const suites = readdirSync(dir).filter((f) => f.endsWith('.suite.yaml')).sort();

describe('policy suites', () => {
  it('finds the suites', () => expect(suites.length).toBeGreaterThanOrEqual(9));
  for (const file of suites) {
    describe(file, () => {
      const loaded = loadSuiteFile(join(dir, file));
      if (!loaded.ok) {
        it('loads', () => expect(loaded.errors).toEqual([]));
        return;
      }
      for (const tc of loaded.suite.cases) {
        it(tc.name, () => {
          const r = runCase(loaded.snapshot, loaded.suite, tc);
          expect(r.diffs.join('\n')).toBe('');
          expect(r.passed).toBe(true);
          if (r.evaluation !== undefined) {
            // Every evaluation matches the contract schema, and a JSON round trip of the snapshot decides identically.
            expect(Evaluation.safeParse(r.evaluation).success).toBe(true);
            const copy = JSON.parse(JSON.stringify(loaded.snapshot)) as Snapshot;
            const request = tc.job === undefined ? DecisionRequest.parse(tc.request) : undefined;
            if (request !== undefined) {
              const again = evaluate(copy, request, (tc.facts ?? {}), new Date((tc.at ?? loaded.suite.at)!));
              expect(again).toEqual(r.evaluation);
            }
          }
        });
      }
    });
  }
});

describe('the runner itself', () => {
  it('fails a case without an expectation', () => {
    const loaded = loadSuiteFile(join(dir, 'seed-004.suite.yaml'));
    if (!loaded.ok) throw new Error('suite did not load');
    const { expect: _drop, ...noExpect } = loaded.suite.cases[0]!;
    const r = runCase(loaded.snapshot, loaded.suite, noExpect);
    expect(r.passed).toBe(false);
    expect(r.diffs[0]).toMatch(/no expect/);
  });
  it('fails and shows a diff when the decision differs', () => {
    const loaded = loadSuiteFile(join(dir, 'seed-004.suite.yaml'));
    if (!loaded.ok) throw new Error('suite did not load');
    const tc = { ...loaded.suite.cases[0]!, expect: { decision: 'DENY' as const } };
    const r = runCase(loaded.snapshot, loaded.suite, tc);
    expect(r.passed).toBe(false);
    expect(r.diffs.join('\n')).toContain('- expected DENY\n  + actual   ALLOW');
  });
});
