import type { ASTNode } from '@marcbachmann/cel-js';

/**
 * The cost budget of CEL conditions. The CEL library bounds expressions only at parse time (AST nodes, depth,
 * literal sizes); nothing bounds the work of running one, and per-call rules are written by the agent asking.
 * `xs.exists(a, xs.exists(b, a == b))` is quadratic in the length of `xs`, `xs.map(a, xs.map(b, b))` allocates
 * quadratically, and `cel.bind(s, t + t, cel.bind(u, s + s, ...))` doubles a string at every level. So every
 * evaluation of a request gets one budget, in units of about one element visit of a native operation (a node
 * evaluation by the interpreter is NODE_COST units), spent twice over:
 * - before running an expression, a static estimate from its AST and the actual sizes of the request's
 *   values (`estimateCelCost`): an upper bound of the work, each comprehension multiplying its body by the
 *   length of what it ranges over; an estimate over what is left of the budget refuses the expression unrun;
 * - while running it, a meter (`instrumentProgram`): each comprehension step and each `+` result is charged,
 *   and the expression stops at the first charge past the budget.
 * Either way the condition's rule fails closed, with a reason that says so.
 */

/** Units one evaluation of a request may spend on all its conditions (stored and per-call). */
export const CEL_EVALUATION_BUDGET = 1_000_000;
/** What one interpreted node evaluation costs, in units (a native element visit is one). */
export const NODE_COST = 20;
/** Expressions this small with no comprehension and no `cel.bind` evaluate each node at most once: not metered. */
const SMALL_EXPRESSION_NODES = 16;

const COMPREHENSIONS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);
const LINEAR_METHODS = new Set(['contains', 'startsWith', 'endsWith', 'indexOf', 'lastIndexOf', 'trim', 'lowerAscii', 'upperAscii', 'substring', 'charAt']);

/** The budget of one evaluation; `left` goes down as expressions run. */
export type CelBudget = { left: number };

export function newCelBudget(units = CEL_EVALUATION_BUDGET): CelBudget {
  return { left: units };
}

class CelBudgetExceeded extends Error {}
/** Thrown by the meter; one preallocated error, because the library's quantifiers catch errors per step and go on. */
const EXCEEDED = new CelBudgetExceeded('the CEL cost budget is spent');
export const isBudgetExceeded = (err: unknown): boolean => err === EXCEEDED;

let meter: CelBudget | null = null;

function charge(units: number): void {
  if (meter !== null && (meter.left -= units) < 0) throw EXCEEDED;
}

/** Runs `fn` with the meter charging `budget`; the meter is synchronous, as evaluation is. */
export function metered<T>(budget: CelBudget, fn: () => T): T {
  const outer = meter;
  meter = budget;
  try {
    return fn();
  } finally {
    meter = outer;
  }
}

// --- the AST ----------------------------------------------------------------------------------------

export function isNode(v: unknown): v is ASTNode {
  return typeof v === 'object' && v !== null && 'op' in v && 'args' in v;
}

/** The direct sub-expressions of a node, as the parser lays them out (before macro expansion). */
export function childNodes(node: ASTNode): ASTNode[] {
  const out: ASTNode[] = [];
  const args: unknown = node.args;
  // Unary operators (`!_`, `-_`) hold their operand directly.
  if (isNode(args)) return [args];
  if (!Array.isArray(args)) return out;
  for (const a of args) {
    if (Array.isArray(a)) {
      for (const b of a) {
        if (Array.isArray(b)) for (const c of b) if (isNode(c)) out.push(c);
        if (isNode(b)) out.push(b);
      }
    } else if (isNode(a)) out.push(a);
  }
  return out;
}

function countNodes(root: ASTNode): number {
  let n = 0;
  const stack = [root];
  while (stack.length > 0) {
    n++;
    stack.push(...childNodes(stack.pop()!));
  }
  return n;
}

/** Nodes a comprehension step evaluates once: nested comprehensions count their call, variable and range only. */
function stepNodes(root: ASTNode): number {
  let n = 0;
  const stack = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    const name = rcallName(node);
    if (name !== undefined && node.op === 'rcall' && COMPREHENSIONS.has(name)) {
      n += 2;
      const receiver = (node.args as unknown[])[1];
      if (isNode(receiver)) stack.push(receiver);
      continue;
    }
    n++;
    stack.push(...childNodes(node));
  }
  return n;
}

const rcallName = (node: ASTNode): string | undefined => {
  if (node.op !== 'rcall' && node.op !== 'call') return undefined;
  const name = (node.args as unknown[])[0];
  return typeof name === 'string' ? name : undefined;
};

const isBind = (node: ASTNode): boolean => {
  if (node.op !== 'rcall' || rcallName(node) !== 'bind') return false;
  const recv = (node.args as unknown[])[1];
  return isNode(recv) && recv.op === 'id' && recv.args === 'cel';
};

/** What the meter and the estimate need to know of a compiled expression. */
export type CelShape = { metered: boolean };

/** Whether an expression can loop or grow values (and so is estimated and metered), from its AST. */
export function celShape(root: ASTNode): CelShape {
  let nodes = 0;
  let loops = false;
  const stack = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    nodes++;
    const name = rcallName(node);
    if (name !== undefined && node.op === 'rcall' && (COMPREHENSIONS.has(name) || isBind(node))) loops = true;
    stack.push(...childNodes(node));
  }
  return { metered: loops || nodes > SMALL_EXPRESSION_NODES };
}

type Evaluate = (ev: unknown, ast: ASTNode, ctx: unknown) => unknown;
type Meta = { alternate?: ASTNode & { evaluate: Evaluate }; macro?: { evaluate: Evaluate }; evaluate?: Evaluate };

/** The function a checked node evaluates with, resolved the way the library's own dispatch resolves it. */
function targetOf(node: ASTNode): Evaluate | undefined {
  const meta = (node as unknown as { meta?: Meta }).meta;
  if (meta === undefined) return undefined;
  const alt = meta.alternate;
  if (alt !== undefined) return (ev, _ast, ctx) => alt.evaluate(ev, alt, ctx);
  const macro = meta.macro;
  if (macro !== undefined) return (ev, _ast, ctx) => macro.evaluate(ev, macro as unknown as ASTNode, ctx);
  return meta.evaluate;
}

function sizeOfValue(v: unknown): number {
  if (typeof v === 'string') return v.length;
  if (Array.isArray(v)) return v.length;
  if (v instanceof Map || v instanceof Set) return v.size;
  return 0;
}

/**
 * Installs the meter on a checked program: each step of a comprehension is charged for the nodes of its
 * body, each `+` for the size of what it produced (string and list concatenation copy). Only the AST nodes
 * of this expression are touched (own properties shadowing the library's dispatch), so the library is used
 * as published. Returns false when the AST is not laid out as expected: the caller then refuses the expression.
 */
export function instrumentProgram(root: ASTNode): boolean {
  const stack = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    const name = rcallName(node);
    if (name !== undefined && node.op === 'rcall' && COMPREHENSIONS.has(name)) {
      // The library expands a macro into a `comprehension` node (its `alternate`) whose `step` runs once per element.
      const alt = (node as unknown as { meta?: { alternate?: { op: string; args: { step?: ASTNode } } } }).meta?.alternate;
      const step = alt?.op === 'comprehension' ? alt.args.step : undefined;
      if (step === undefined) return false;
      const target = targetOf(step);
      if (target === undefined) return false;
      // The body is every macro argument after the iteration variable; a step evaluates each of its nodes at most
      // once, except the bodies of comprehensions inside it, whose own steps are charged.
      const body = (node.args as unknown[])[2];
      const weight = NODE_COST * (1 + (Array.isArray(body) ? body.slice(1).filter(isNode).reduce((n, b) => n + stepNodes(b), 0) : 1));
      Object.defineProperty(step, 'evaluate', {
        configurable: true,
        writable: true,
        value: function meteredStep(this: ASTNode, ev: unknown, ast: ASTNode, ctx: unknown) {
          charge(weight);
          return target.call(this, ev, ast, ctx);
        },
      });
    } else if (node.op === '+') {
      const target = targetOf(node);
      if (target === undefined) return false;
      Object.defineProperty(node, 'evaluate', {
        configurable: true,
        writable: true,
        value: function meteredPlus(this: ASTNode, ev: unknown, ast: ASTNode, ctx: unknown) {
          const v = target.call(this, ev, ast, ctx);
          charge(sizeOfValue(v));
          return v;
        },
      });
    }
    stack.push(...childNodes(node));
  }
  return true;
}

// --- the static estimate ---------------------------------------------------------------------------------

/** An upper bound of an expression: its cost, the size of its value, and of anything inside that value. */
type Bound = { cost: number; size: number; deep: number };

/** The largest string, list or map anywhere in the variables (every value of the request is bounded by it). */
function largestValue(vars: Record<string, unknown> | unknown[]): number {
  let max = 0;
  const stack: object[] = [vars];
  while (stack.length > 0) {
    const o = stack.pop()!;
    const values: unknown[] = Array.isArray(o) ? o : Object.values(o);
    if (o !== vars && values.length > max) max = values.length;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v === 'string') {
        if (v.length > max) max = v.length;
      } else if (v !== null && typeof v === 'object' && !(v instanceof Date)) stack.push(v);
    }
  }
  return max;
}

const largest = new WeakMap<object, number>();
const deepest = new WeakMap<object, number>();

/** The largest string, list or map inside a value (not the value itself); 0 for a scalar or a string. */
function deepOf(value: unknown): number {
  if (value === null || typeof value !== 'object' || value instanceof Date) return 0;
  let d = deepest.get(value);
  if (d === undefined) deepest.set(value, (d = largestValue(value as Record<string, unknown>)));
  return d;
}

type Known = { known: true; value: unknown } | { known: false };
const UNKNOWN: Known = { known: false };

function sizeOfInput(v: unknown): number {
  if (typeof v === 'string' || Array.isArray(v)) return v.length;
  if (v !== null && typeof v === 'object' && !(v instanceof Date)) return Object.keys(v).length;
  return 0;
}

/**
 * An upper bound of the cost of running `root` with `vars`, in units. Sizes come from the values themselves
 * where the expression names them by a plain path (`xs`, `action.args.items`, `context["k"]`), otherwise from
 * the largest value of the request; comprehensions multiply their body's cost by the size they range over.
 */
export function estimateCelCost(root: ASTNode, vars: Record<string, unknown>): number {
  let m = largest.get(vars);
  if (m === undefined) largest.set(vars, (m = largestValue(vars)));
  const M = m;
  const scopes: Array<Map<string, Bound>> = [];
  const scoped = (name: string): Bound | undefined => {
    for (let i = scopes.length - 1; i >= 0; i--) {
      const b = scopes[i]!.get(name);
      if (b !== undefined) return b;
    }
    return undefined;
  };

  const resolve = (node: ASTNode): Known => {
    if (node.op === 'id') {
      const name = node.args;
      if (scoped(name) !== undefined || !Object.hasOwn(vars, name)) return UNKNOWN;
      return { known: true, value: vars[name] };
    }
    if (node.op === '.' || node.op === '[]') {
      const [objNode, key] = node.args as unknown as [ASTNode, unknown];
      const k = node.op === '.' ? key : isNode(key) && key.op === 'value' ? key.args : undefined;
      if (typeof k !== 'string' && typeof k !== 'number' && typeof k !== 'bigint') return UNKNOWN;
      const obj = resolve(objNode);
      if (!obj.known || obj.value === null || typeof obj.value !== 'object') return UNKNOWN;
      const prop = String(k);
      if (!Object.hasOwn(obj.value, prop)) return UNKNOWN;
      return { known: true, value: (obj.value as Record<string, unknown>)[prop] };
    }
    return UNKNOWN;
  };

  const est = (node: ASTNode): Bound => {
    const known = resolve(node);
    if (known.known) return { cost: NODE_COST * depthOf(node), size: sizeOfInput(known.value), deep: deepOf(known.value) };
    const name = rcallName(node);
    switch (node.op) {
      case 'value': {
        const v: unknown = node.args;
        return { cost: NODE_COST, size: typeof v === 'string' ? v.length : 0, deep: 0 };
      }
      case 'id': {
        const b = scoped(node.args);
        return b === undefined ? { cost: NODE_COST, size: M, deep: M } : { cost: NODE_COST, size: b.size, deep: b.deep };
      }
      case '.':
      case '[]': {
        const parts = childNodes(node).map(est);
        const cost = NODE_COST + parts.reduce((c, p) => c + p.cost, 0);
        const deep = parts[0]?.deep ?? M;
        return { cost, size: deep, deep };
      }
      case 'list':
      case 'map': {
        const parts = childNodes(node).map(est);
        const entries = Array.isArray(node.args) ? node.args.length : 0;
        return { cost: NODE_COST + sum(parts, 'cost'), size: entries, deep: Math.max(0, ...parts.map((p) => Math.max(p.size, p.deep))) };
      }
      case '+': {
        const [a, b] = childNodes(node).map(est) as [Bound, Bound];
        return { cost: NODE_COST + a.cost + b.cost + a.size + b.size, size: a.size + b.size, deep: Math.max(a.deep, b.deep) };
      }
      case '==':
      case '!=':
      case '<':
      case '<=':
      case '>':
      case '>=': {
        const [a, b] = childNodes(node).map(est) as [Bound, Bound];
        return { cost: NODE_COST + a.cost + b.cost + Math.min(a.size * Math.max(1, a.deep), b.size * Math.max(1, b.deep)), size: 0, deep: 0 };
      }
      case 'in': {
        const [a, b] = childNodes(node).map(est) as [Bound, Bound];
        return { cost: NODE_COST + a.cost + b.cost + b.size * (1 + Math.min(a.size, b.deep)), size: 0, deep: 0 };
      }
      case '?:': {
        const [c, l, r] = childNodes(node).map(est) as [Bound, Bound, Bound];
        return { cost: NODE_COST + c.cost + Math.max(l.cost, r.cost), size: Math.max(l.size, r.size), deep: Math.max(l.deep, r.deep) };
      }
      case 'rcall':
        if (name !== undefined && COMPREHENSIONS.has(name)) return comprehension(node, name);
        if (isBind(node)) return bind(node);
        return call(node, name, true);
      case 'call':
        if (name === 'has') return { cost: NODE_COST * (1 + countNodes(node)), size: 0, deep: 0 };
        return call(node, name, false);
      default: {
        // Logical and arithmetic operators: their value is a scalar.
        const parts = childNodes(node).map(est);
        return { cost: NODE_COST + sum(parts, 'cost'), size: 0, deep: 0 };
      }
    }
  };

  const comprehension = (node: ASTNode, name: string): Bound => {
    const [, receiver, args] = node.args as unknown as [string, ASTNode, ASTNode[]];
    const over = est(receiver);
    const iterVar = args[0];
    const scope = new Map<string, Bound>();
    if (iterVar?.op === 'id') scope.set(iterVar.args, { cost: NODE_COST, size: over.deep, deep: over.deep });
    scopes.push(scope);
    const body = args.slice(1).map(est);
    scopes.pop();
    const step = NODE_COST + sum(body, 'cost');
    // The call and its iteration variable are nodes too: the meter charges an enclosing step for every node of its body.
    const cost = 2 * NODE_COST + over.cost + over.size * step;
    const last = body.at(-1);
    if (name === 'map') return { cost, size: over.size, deep: Math.max(last?.size ?? M, last?.deep ?? M) };
    if (name === 'filter') return { cost, size: over.size, deep: over.deep };
    return { cost, size: 0, deep: 0 };
  };

  const bind = (node: ASTNode): Bound => {
    const [, , args] = node.args as unknown as [string, ASTNode, ASTNode[]];
    const [v, val, exp] = args as [ASTNode, ASTNode, ASTNode];
    const value = est(val);
    scopes.push(new Map([[v.args as unknown as string, { cost: NODE_COST, size: value.size, deep: value.deep }]]));
    const body = est(exp);
    scopes.pop();
    // The call, `cel` and the variable are three nodes.
    return { cost: 3 * NODE_COST + value.cost + body.cost, size: body.size, deep: body.deep };
  };

  const call = (node: ASTNode, name: string | undefined, method: boolean): Bound => {
    const parts = childNodes(node).map(est);
    const cost = NODE_COST + sum(parts, 'cost');
    const recv = method ? parts[0] : undefined;
    const sizes = sum(parts, 'size');
    if (name === 'size') return { cost, size: 0, deep: 0 };
    if (recv !== undefined && name !== undefined && LINEAR_METHODS.has(name)) return { cost: cost + sizes, size: recv.size, deep: 0 };
    if (recv !== undefined && name === 'split') return { cost: cost + sizes, size: recv.size + 1, deep: recv.size };
    if (recv !== undefined && name === 'join') {
      const length = recv.size * (recv.deep + (parts[1]?.size ?? 0));
      return { cost: cost + length, size: length, deep: 0 };
    }
    // Conversions and anything else: linear in what they are given, no larger than it (or than a number's text).
    const biggest = Math.max(32, ...parts.map((p) => Math.max(p.size, p.deep)));
    return { cost: cost + sizes, size: biggest, deep: biggest };
  };

  return est(root).cost;
}

function sum(parts: Bound[], key: 'cost' | 'size'): number {
  let s = 0;
  for (const p of parts) s += p[key];
  return s;
}

/** Nodes on a plain path (`a.b[0].c`): each is one evaluation. */
function depthOf(node: ASTNode): number {
  let n = 1;
  let cur: unknown = node;
  while (isNode(cur) && (cur.op === '.' || cur.op === '[]')) {
    n += cur.op === '[]' ? 2 : 1;
    cur = (cur.args as unknown[])[0];
  }
  return n;
}
