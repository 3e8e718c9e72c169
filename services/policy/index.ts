/**
 * The policy engine: pure compile and evaluate (no I/O, no ambient clock, no randomness).
 * See README.md in this folder for the document format, the natural-language grammar and precedence.
 */
import type { PolicyDocument } from '../../schemas/policy.ts';
import type { Decision } from '../../schemas/decision-kind.ts';

export type { PolicyDocument, Decision };
export type { PolicyError } from './policy-error.ts';
export { formatPolicyError } from './policy-error.ts';
export type { Snapshot, CompiledPolicy, CompiledRule } from './snapshot.ts';
export { compile, type PolicySource, type CompileOptions, type CompileResult } from './compile.ts';
export { evaluate } from './evaluate.ts';
export { loadSnapshot } from './runtime.ts';
export type { Facts, CounterSpec } from './counters.ts';
