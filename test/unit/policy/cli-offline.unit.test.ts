import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../../services/cli/main.ts';

/**
 * `countersign policy validate | simulate | test` need no server: run them as the CLI runs them (main with
 * argv), capturing what they print and the exit code, on files written here and the fixtures.
 */
const FIXTURES = path.join(import.meta.dirname, '../../fixtures/policy');
const dir = mkdtempSync(path.join(tmpdir(), 'countersign-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((stdout += String(s)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((stderr += String(s)), true));
  try {
    const code = await main(['node', 'countersign', ...args]);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = undefined;
  }
}

const POLICY = `apiVersion: countersign/v1
kind: Policy
metadata: { id: cli-test }
rules:
  - name: big-refunds
    match: { tool: payment_tool, operation: Refund }
    condition: amount > 500
    decision: REQUIRE_APPROVAL
    approval: { approvers: [finance] }
  - text: Auto-approve refunds of $100 or less
`;

describe('countersign policy validate', () => {
  it('prints every error as FILE:LINE:COL message and exits 1', async () => {
    const bad = file('bad.yaml', 'apiVersion: countersign/v1\nkind: Policy\nmetadata: { id: x }\nrules:\n  - { name: a, decision: MAYBE }\n  - { name: b, condition: "amount >>> 1", decision: DENY }\n  - { name: c, match: { time: { timezone: Mars/Base } }, decision: DENY }\n');
    const r = await cli('policy', 'validate', bad);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:\\d+ rules\\[0\\]\\.decision: unknown value "MAYBE"`));
    expect(lines[1]).toMatch(/:6:\d+ rules\[1\]\.condition: invalid CEL/);
    expect(lines[2]).toMatch(/:7:\d+ rules\[2\]\.match\.time: a time window needs at least one of days, after, before/);
    expect(lines[3]).toMatch(/:7:\d+ rules\[2\]\.match\.time\.timezone: unknown IANA time zone/);
  });
  it('an empty file is an error, not a crash', async () => {
    const r = await cli('policy', 'validate', file('empty.yaml', ''));
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/empty\.yaml:1:1 /);
  });
  it('a valid file prints a one-line summary and exits 0', async () => {
    const r = await cli('policy', 'validate', file('ok.yaml', POLICY));
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toMatch(/ok\.yaml: ok: policy cli-test/);
  });
});

describe('countersign policy simulate', () => {
  it('prints the decision for a request at a given instant; --json is the evaluation', async () => {
    const policy = file('sim.yaml', POLICY);
    const request = file('req.json', JSON.stringify({ agent: { id: 'bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 900 } }));
    const text = await cli('policy', 'simulate', '--policy', policy, '--request', request, '--at', '2025-01-08T12:00:00Z');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/decision:\s+REQUIRE_APPROVAL/);
    expect(text.stdout).toMatch(/matched_rule:\s+big-refunds/);
    const json = await cli('policy', 'simulate', '--policy', policy, '--request', request, '--at', '2025-01-08T12:00:00Z', '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ decision: 'REQUIRE_APPROVAL', matched_rule: 'big-refunds', now: '2025-01-08T12:00:00.000Z', snapshot_hash: expect.stringMatching(/^sha256:/) });
    const small = file('small.json', JSON.stringify({ agent: { id: 'bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 80 } }));
    expect(JSON.parse((await cli('policy', 'simulate', '--policy', policy, '--request', small, '--json')).stdout)).toMatchObject({ decision: 'ALLOW', matched_rule: 'auto-approve-refunds-of-100-or-less' });
  });
  it('a request that is not one is a precise error', async () => {
    const r = await cli('policy', 'simulate', '--policy', file('p.yaml', POLICY), '--request', file('bad-req.json', JSON.stringify({ agent: { id: 'bot' }, action: { tool: 5 } })));
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/action\.tool/);
  });
});

describe('countersign policy test', () => {
  it('runs suites and exits 0 when every case passes', async () => {
    const r = await cli('policy', 'test', path.join(FIXTURES, 'seed-001.suite.yaml'), path.join(FIXTURES, 'tool-catalog.suite.yaml'));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\d+ passed, 0 failed/);
  });
  it('a wrong expectation fails with the diff; a case without an expectation fails', async () => {
    const suite = file('failing.suite.yaml', `policy:
  ${POLICY.replace(/\n/g, '\n  ')}
circuit_breakers: false
at: "2025-01-08T12:00:00Z"
cases:
  - name: wrong
    request: { agent: { id: bot }, action: { tool: payment_tool, operation: Refund }, context: { amount: 900 } }
    expect: { decision: ALLOW }
  - name: no expectation
    request: { agent: { id: bot }, action: { tool: payment_tool, operation: Refund }, context: { amount: 9 } }
`);
    const r = await cli('policy', 'test', suite);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('- expected ALLOW');
    expect(r.stdout).toContain('+ actual   REQUIRE_APPROVAL');
    expect(r.stdout).toMatch(/no expect/);
    expect(r.stdout).toMatch(/0 passed, 2 failed/);
  });
});
