import type { ASTNode } from '@marcbachmann/cel-js';
import type { DecisionRequest } from '../../schemas/decision.ts';
import { isNode } from './cel-budget.ts';

/**
 * A direct path for the small conditions most policies are made of (`amount > 500 && vendor_status ==
 * "approved"`): comparisons of request fields with literals, joined by `&&`, `||` and `!`. Running such a
 * condition through the CEL interpreter costs more than the rest of an evaluation, mostly in building its
 * variables and dispatching overloads.
 *
 * It is a shortcut, never a second semantics: it answers only when every value it touches has the one type
 * its operator is defined for here (numbers with numbers, strings with strings, booleans), and otherwise
 * says UNSURE, and the interpreter runs the condition as before. So an error, a missing field, a
 * heterogeneous comparison, a timestamp, a null or a list all reach the interpreter, which alone decides
 * what they mean. test/unit/policy/cel-fast.unit.test.ts checks that the two agree on random conditions.
 */
export const UNSURE: unique symbol = Symbol('unsure');
export type Unsure = typeof UNSURE;

/** Where a condition's variables come from: the request, the clock, and (for outcome rules) output and status. */
export type FastScope = { request: DecisionRequest; now: Date; extra: Record<string, unknown> | undefined };
export type FastCondition = (scope: FastScope) => boolean | Unsure;
type Value = (scope: FastScope) => unknown;

const hasOwn = (o: object, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key);

/** A map as the interpreter recognises one: by its `constructor` (so an own `constructor` field makes it none). */
function isMap(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const k: unknown = (v as { constructor?: unknown }).constructor;
  return k === Object || k === undefined;
}

// The variables as celVariables (check-rule.ts) lays them out: extra first, then the reserved names, then the
// context's own fields. A name found nowhere is UNSURE: the interpreter has its own rules for it.
function variable(name: string): Value {
  const reserved: Value | undefined =
    name === 'context' ? (s) => s.request.context ?? {}
    : name === 'action' ? (s) => s.request.action
    : name === 'agent' ? (s) => s.request.agent
    : name === 'model' ? (s) => s.request.model ?? {}
    : name === 'now' ? (s) => s.now
    : undefined;
  return (s) => {
    const extra = s.extra;
    if (extra !== undefined && hasOwn(extra, name)) return extra[name];
    if (reserved !== undefined) return reserved(s);
    const context = s.request.context;
    if (context !== undefined && context !== null && hasOwn(context, name)) return (context as Record<string, unknown>)[name];
    return UNSURE;
  };
}

/** A literal the direct path can use as it is: a safe integer, a double, a string or a boolean. */
function literal(v: unknown): { ok: true; value: number | string | boolean } | { ok: false } {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? { ok: true, value: Number(v) } : { ok: false };
  if (typeof v === 'number' && Number.isFinite(v)) return { ok: true, value: v };
  if (typeof v === 'string' || typeof v === 'boolean') return { ok: true, value: v };
  return { ok: false };
}

function value(node: ASTNode): Value | undefined {
  const args = node.args as unknown;
  switch (node.op) {
    case 'value': {
      const l = literal(args);
      if (!l.ok) return undefined;
      const v = l.value;
      return () => v;
    }
    case '-_': {
      if (!isNode(args) || args.op !== 'value') return undefined;
      const l = literal(args.args);
      if (!l.ok || typeof l.value !== 'number') return undefined;
      const v = -l.value;
      return () => v;
    }
    case 'id':
      return typeof args === 'string' ? variable(args) : undefined;
    case '.':
    case '[]': {
      if (!Array.isArray(args) || args.length !== 2 || !isNode(args[0])) return undefined;
      const key: unknown = node.op === '.' ? args[1] : isNode(args[1]) && args[1].op === 'value' ? args[1].args : undefined;
      if (typeof key !== 'string') return undefined;
      const of = value(args[0]);
      if (of === undefined) return undefined;
      return (s) => {
        const o = of(s);
        return isMap(o) && hasOwn(o, key) ? o[key] : UNSURE;
      };
    }
    default: {
      const c = condition(node);
      return c;
    }
  }
}

function compare(op: string, a: Value, b: Value): FastCondition | undefined {
  switch (op) {
    case '==':
    case '!=': {
      const eq = op === '==';
      return (s) => {
        const x = a(s);
        const y = b(s);
        const t = typeof x;
        if (t !== typeof y || (t !== 'number' && t !== 'string' && t !== 'boolean')) return UNSURE;
        return (x === y) === eq;
      };
    }
    case '<':
      return (s) => {
        const x = a(s);
        const y = b(s);
        return typeof x === 'number' && typeof y === 'number' ? x < y : UNSURE;
      };
    case '<=':
      return (s) => {
        const x = a(s);
        const y = b(s);
        return typeof x === 'number' && typeof y === 'number' ? x <= y : UNSURE;
      };
    case '>':
      return (s) => {
        const x = a(s);
        const y = b(s);
        return typeof x === 'number' && typeof y === 'number' ? x > y : UNSURE;
      };
    case '>=':
      return (s) => {
        const x = a(s);
        const y = b(s);
        return typeof x === 'number' && typeof y === 'number' ? x >= y : UNSURE;
      };
    default:
      return undefined;
  }
}

function condition(node: ASTNode): FastCondition | undefined {
  const args = node.args as unknown;
  switch (node.op) {
    case '&&':
    case '||': {
      if (!Array.isArray(args) || args.length !== 2 || !isNode(args[0]) || !isNode(args[1])) return undefined;
      const l = value(args[0]);
      const r = value(args[1]);
      if (l === undefined || r === undefined) return undefined;
      // Only a left side that is a plain boolean may decide alone (false && …, true || …); anything unsure on
      // either side goes to the interpreter, whose error absorption is its own.
      const stop = node.op === '||';
      return (s) => {
        const x = l(s);
        if (typeof x !== 'boolean') return UNSURE;
        if (x === stop) return stop;
        const y = r(s);
        return typeof y === 'boolean' ? y : UNSURE;
      };
    }
    case '!_': {
      if (!isNode(args)) return undefined;
      const v = value(args);
      if (v === undefined) return undefined;
      return (s) => {
        const x = v(s);
        return typeof x === 'boolean' ? !x : UNSURE;
      };
    }
    case 'in': {
      if (!Array.isArray(args) || args.length !== 2 || !isNode(args[0]) || !isNode(args[1]) || args[1].op !== 'list') return undefined;
      const items = args[1].args as unknown;
      if (!Array.isArray(items)) return undefined;
      const strings: string[] = [];
      for (const item of items) {
        if (!isNode(item) || item.op !== 'value' || typeof item.args !== 'string') return undefined;
        strings.push(item.args);
      }
      const set = new Set(strings);
      const v = value(args[0]);
      if (v === undefined) return undefined;
      return (s) => {
        const x = v(s);
        return typeof x === 'string' ? set.has(x) : UNSURE;
      };
    }
    case '==':
    case '!=':
    case '<':
    case '<=':
    case '>':
    case '>=': {
      if (!Array.isArray(args) || args.length !== 2 || !isNode(args[0]) || !isNode(args[1])) return undefined;
      const a = value(args[0]);
      const b = value(args[1]);
      if (a === undefined || b === undefined) return undefined;
      return compare(node.op, a, b);
    }
    case 'value':
      return typeof args === 'boolean' ? () => args : undefined;
    case 'id':
    case '.':
    case '[]': {
      const v = value(node);
      if (v === undefined) return undefined;
      return (s) => {
        const x = v(s);
        return typeof x === 'boolean' ? x : UNSURE;
      };
    }
    default:
      return undefined;
  }
}

/** The direct form of a condition's AST, or undefined when it uses anything outside the direct path's reach. */
export function fastCondition(ast: ASTNode): FastCondition | undefined {
  try {
    return condition(ast);
  } catch {
    return undefined;
  }
}
