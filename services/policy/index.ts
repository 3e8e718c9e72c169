/**
 * The policy engine: pure compile and evaluate (no I/O, no ambient clock, no randomness).
 * See README.md in this folder for the document format, the natural-language grammar and precedence.
 */
import type { PolicyDocument } from '../../schemas/policy.ts';
import type { Decision } from '../../schemas/decision-kind.ts';

export type { PolicyDocument, Decision };
export type { PolicyError } from './policy-error.ts';
export { formatPolicyError } from './policy-error.ts';
export type { Snapshot, CompiledPolicy, CompiledRule, CompiledApproval } from './snapshot.ts';
export { compile, assembleEffective, type PolicySource, type CompileOptions, type CompileResult } from './compile.ts';
export { compileDocument } from './compile-document.ts';
export { parsePolicyText, checkPolicyText } from './parse-text.ts';
export { evaluate } from './evaluate.ts';
export { perCallRuleIssues, type PerCallIssue } from './per-call-rules.ts';
export { CEL_EVALUATION_BUDGET } from './cel-budget.ts';
export { evaluateOutcome, Outcome, type OutcomeEvaluation, type OutputViolation } from './outcome.ts';
export { loadSnapshot } from './runtime.ts';
export type { Facts, CounterSpec } from './counters.ts';
export { requiredCounters, counterIncrements, type CounterIncrement } from './counter-requests.ts';
export { simulate, SimulateBody, requestFromJob, withDrafts, type SimulationResult, type SimulateOutcome } from './simulate.ts';
export { compileSentence, type InterpretedRule } from './natural-language.ts';
export { interpretations, type Interpretation } from './interpret.ts';
export {
  catalogFromOpenApi, catalogFromMcp, mergeCatalogs, enrichRequest, catalogRiskTags, withRiskTags, sourceFromRegistration, catalogHash,
  applyCatalogChange, catalogOf, catalogFact, EMPTY_CATALOG, type ToolCatalog, type CatalogEntry, type CatalogSource, type CatalogState, type CatalogError,
} from './tool-catalog.ts';
export { circuitBreakerPack, CIRCUIT_BREAKERS_ID, CIRCUIT_BREAKER_OPERATIONS } from './builtin-pack.ts';
