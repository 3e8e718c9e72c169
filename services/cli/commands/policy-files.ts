import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { checkPolicyText } from '../../policy/parse-text.ts';
import { parseDataText } from '../../policy/parse-text.ts';
import { parseSuite, suiteSnapshot, type TestSuite } from '../../policy/test-suite.ts';
import { compileDocument } from '../../policy/compile-document.ts';
import { formatPath, type PolicyError } from '../../policy/policy-error.ts';
import type { CompiledPolicy, Snapshot } from '../../policy/snapshot.ts';

/** The I/O half of the policy commands: reading files. Everything after reading is the pure engine. */
export function readText(file: string): { ok: true; text: string } | { ok: false; errors: PolicyError[] } {
  try {
    return { ok: true, text: readFileSync(file, 'utf8') };
  } catch (err) {
    return { ok: false, errors: [{ file, path: '', message: `cannot read: ${err instanceof Error ? err.message : String(err)}` }] };
  }
}

export function loadPolicyFile(file: string): { ok: true; policy: CompiledPolicy } | { ok: false; errors: PolicyError[] } {
  const t = readText(file);
  if (!t.ok) return t;
  const r = checkPolicyText(t.text, file);
  return r.ok ? { ok: true, policy: r.policy } : r;
}

export function loadDataFile(file: string): { ok: true; value: unknown } | { ok: false; errors: PolicyError[] } {
  const t = readText(file);
  if (!t.ok) return t;
  const r = parseDataText(t.text, file);
  return r.ok ? { ok: true, value: r.value } : r;
}

/** A suite file and the snapshot of its policies (files relative to the suite, or inline documents). */
export function loadSuiteFile(file: string): { ok: true; suite: TestSuite; snapshot: Snapshot } | { ok: false; errors: PolicyError[] } {
  const data = loadDataFile(file);
  if (!data.ok) return data;
  const parsed = parseSuite(data.value);
  if (!parsed.ok) return { ok: false, errors: parsed.errors.map((e) => ({ ...e, file })) };
  const suite = parsed.suite;
  const policies: CompiledPolicy[] = [];
  const errors: PolicyError[] = [];
  for (const rel of suite.policies ?? []) {
    const p = loadPolicyFile(resolve(dirname(file), rel));
    if (p.ok) policies.push(p.policy);
    else errors.push(...p.errors);
  }
  if (suite.policy !== undefined) {
    const docs = Array.isArray(suite.policy) ? (suite.policy as unknown[]) : [suite.policy];
    docs.forEach((doc, i) => {
      const c = compileDocument(doc, 0);
      if (c.ok) policies.push(c.policy);
      else for (const e of c.issues) errors.push({ file, path: formatPath(['policy', ...(Array.isArray(suite.policy) ? [i] : []), ...e.path]), message: e.message });
    });
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, suite, snapshot: suiteSnapshot(policies, suite) };
}
