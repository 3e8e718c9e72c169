import { Environment, type ASTNode, type ParseResult } from '@marcbachmann/cel-js';
import { fastCondition, type FastCondition } from './cel-fast.ts';
import { CEL_EVALUATION_BUDGET, celShape, childNodes, estimateCelCost, instrumentProgram, isBudgetExceeded, metered, newCelBudget, type CelBudget } from './cel-budget.ts';

/**
 * CEL conditions. Expressions are parsed and type-checked once (at compile time) and cached by text;
 * evaluation only runs the prepared program. Variables: the request's `context` fields at top level,
 * plus `action`, `agent`, `model`, `now` (a timestamp) and `context` itself (so `has(context.x)` can
 * test for a field); outcome rules also see `output` and `status`. Reserved names win over context fields.
 */
export const MAX_CEL_LENGTH = 4096;
const LIMITS = { maxAstNodes: 500, maxDepth: 32, maxListElements: 256, maxMapEntries: 256, maxCallArguments: 16 };
/** Macros that loop over a list; nesting them multiplies work by the list length each time. */
const COMPREHENSIONS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);
const MAX_COMPREHENSION_NESTING = 2;

export type CelKind = 'request' | 'outcome';
export type CelProgram = ParseResult;

/** Loose equality across CEL's int (bigint) and double (number), which JSON input mixes freely. */
function celEquals(a: unknown, b: unknown): boolean {
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) return Number(a) === Number(b);
  return a === b;
}

function buildEnvironment(kind: CelKind): Environment {
  const env = new Environment({ unlistedVariablesAreDyn: true, limits: LIMITS })
    .registerVariable('now', 'google.protobuf.Timestamp')
    .registerVariable('action', 'map')
    .registerVariable('agent', 'map')
    .registerVariable('model', 'map')
    .registerVariable('context', 'map')
    // Seed 003 writes `tools_used.contains("policy_check")`; standard CEL spells it `"policy_check" in tools_used`.
    .registerFunction({
      name: 'contains',
      receiverType: 'list',
      returnType: 'bool',
      params: [{ name: 'value', type: 'dyn' }],
      handler: (list: unknown[], value: unknown) => list.some((item) => celEquals(item, value)),
    });
  if (kind === 'outcome') env.registerVariable('output', 'dyn').registerVariable('status', 'string');
  return env;
}

const environments: Record<CelKind, Environment> = { request: buildEnvironment('request'), outcome: buildEnvironment('outcome') };

/** The first line of a library error, with the column it points at. */
export function celErrorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const first = err.message.split('\n')[0]!.trim();
  const range = (err as { range?: { start: number } }).range;
  return range === undefined ? first : `${first} (at column ${range.start + 1})`;
}

/** Rejections the library would accept: regexes (native RegExp can backtrack catastrophically) and deep loops. */
function vetAst(root: ASTNode): string | undefined {
  const stack: { node: ASTNode; loops: number }[] = [{ node: root, loops: 0 }];
  while (stack.length > 0) {
    const { node, loops } = stack.pop()!;
    let inner = loops;
    if (node.op === 'rcall' || node.op === 'call') {
      const name = (node.args as unknown[])[0];
      if (name === 'matches') return 'matches() is not allowed: regular expressions can take exponential time; use startsWith, endsWith, contains or ==';
      if (node.op === 'rcall' && typeof name === 'string' && COMPREHENSIONS.has(name)) {
        inner = loops + 1;
        if (inner > MAX_COMPREHENSION_NESTING) return `comprehensions (all, exists, map, filter) may be nested at most ${MAX_COMPREHENSION_NESTING} deep`;
      }
    }
    for (const child of childNodes(node)) stack.push({ node: child, loops: inner });
  }
  return undefined;
}

const cache = new Map<string, CelProgram>();
const meteredPrograms = new WeakSet<CelProgram>();
const fastPrograms = new WeakMap<CelProgram, FastCondition>();

/** The direct form of a compiled, unmetered program (cel-fast.ts), when it has one. */
export function fastOf(program: CelProgram): FastCondition | undefined {
  return fastPrograms.get(program);
}
const MAX_CACHE = 20_000;

export type CelCompileResult = { ok: true; program: CelProgram } | { ok: false; message: string };

/** Parse, vet and type-check a condition once; the program is cached by kind and text. */
export function compileCel(expression: string, kind: CelKind = 'request'): CelCompileResult {
  const key = `${kind}\u0000${expression}`;
  const hit = cache.get(key);
  if (hit !== undefined) return { ok: true, program: hit };
  if (expression.length > MAX_CEL_LENGTH) return { ok: false, message: `CEL expression longer than ${MAX_CEL_LENGTH} characters` };
  let program: CelProgram;
  try {
    program = environments[kind].parse(expression);
  } catch (err) {
    return { ok: false, message: `invalid CEL: ${celErrorMessage(err)}` };
  }
  const vetted = vetAst(program.ast);
  if (vetted !== undefined) return { ok: false, message: `invalid CEL: ${vetted}` };
  let checked;
  try {
    checked = program.check();
  } catch (err) {
    return { ok: false, message: `invalid CEL: ${celErrorMessage(err)}` };
  }
  if (!checked.valid) return { ok: false, message: `invalid CEL: ${celErrorMessage(checked.error)}` };
  if (checked.type !== 'bool' && checked.type !== 'dyn') return { ok: false, message: `CEL condition must return a bool, but \`${expression}\` returns ${checked.type}` };
  // Loops and long expressions are estimated before each run and metered during it (cel-budget.ts).
  if (celShape(program.ast).metered) {
    if (!instrumentProgram(program.ast)) return { ok: false, message: 'invalid CEL: the expression cannot be metered' };
    meteredPrograms.add(program);
  } else {
    const fast = fastCondition(program.ast);
    if (fast !== undefined) fastPrograms.set(program, fast);
  }
  if (cache.size >= MAX_CACHE) cache.clear();
  cache.set(key, program);
  return { ok: true, program };
}

export type CelRunResult = { ok: true; value: boolean } | { ok: false; error: string };

/**
 * The cost of running a program with these variables, when it is estimated at all (loops, `cel.bind`, long
 * expressions); `undefined` for a small loop-free expression, whose nodes each run at most once.
 */
export function celCostEstimate(program: CelProgram, vars: Record<string, unknown>): number | undefined {
  return meteredPrograms.has(program) ? estimateCelCost(program.ast, vars) : undefined;
}

const budgetMessage = (what: string, budget: CelBudget) =>
  `${what} the CEL cost budget of this evaluation (${CEL_EVALUATION_BUDGET} units; ${Math.max(0, budget.left)} were left)`;

/**
 * Runs a prepared program within `budget` (shared by every condition of one evaluation); never throws. A
 * non-bool result, an estimate over what is left of the budget, or a run that spends past it is an error, so
 * the rule fails closed.
 */
export function runCel(program: CelProgram, vars: Record<string, unknown>, budget: CelBudget = newCelBudget()): CelRunResult {
  try {
    let value: unknown;
    if (meteredPrograms.has(program)) {
      const cost = estimateCelCost(program.ast, vars);
      if (cost > budget.left) return { ok: false, error: budgetMessage(`its estimated cost (${cost} units) is over`, budget) };
      value = metered<unknown>(budget, () => program(vars));
      if (budget.left < 0) return { ok: false, error: budgetMessage('it ran past', budget) };
    } else value = program(vars);
    if (typeof value !== 'boolean') return { ok: false, error: `condition returned ${typeof value === 'bigint' ? 'int' : value === null ? 'null' : typeof value}, not a bool` };
    return { ok: true, value };
  } catch (err) {
    if (isBudgetExceeded(err)) return { ok: false, error: budgetMessage('it ran past', budget) };
    return { ok: false, error: celErrorMessage(err) };
  }
}
